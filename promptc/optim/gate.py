"""The acceptance gate: one rule, used by every optimizer, for "is the candidate better?".

A candidate (a new instruction, a new demo set) and the incumbent are scored on the same
validation rows, so the comparison is paired: per row, the difference of the two scores.
The candidate is accepted when the mean difference is positive AND large against its own
noise: a one-sided paired t statistic `mean / (sd / sqrt(n))` of at least `Z` (1.645,
about a 5 % false-accept rate on a pure-noise candidate). On exact-match metrics
(differences in {-1, 0, 1}) that is McNemar's test in its normal form: on 30 rows, 3 more
right answers and none lost pass (t = 1.80), 2 do not (t = 1.44), 5 gained for 1 lost
pass (t = 1.68), 4 for 1 do not. A gain that is real but that small on 30 rows cannot be
told from luck; it is refused rather than chased.

Why not "strictly higher mean": with a 135M model, an instruction that copies the loss
template seven times was once accepted for 11/30 against 9/30. The gate is also what makes
a search over many candidates safe: the race picks a winner on training rows, and only a
winner the validation rows confirm is kept.

`hopeless` lets a validation pass stop early: once even a perfect score on every
remaining row could not pass the gate, the rest is not evaluated.
"""

from __future__ import annotations

import math
from typing import Sequence

from attrs import frozen

Z = 1.645  # one-sided 95 %
EPS = 1e-12


@frozen
class Verdict:
    accepted: bool
    gain: float  # mean paired difference (candidate - incumbent)
    t: float  # paired t statistic (inf when every row gained the same amount)
    rows: int
    reason: str


def compare(incumbent: Sequence[float], candidate: Sequence[float], *, z: float = Z) -> Verdict:
    """Paired comparison over the rows both were scored on (`candidate` may be a prefix)."""
    n = min(len(incumbent), len(candidate))
    if n == 0:
        return Verdict(False, 0.0, 0.0, 0, "no rows to compare")
    diffs = [candidate[i] - incumbent[i] for i in range(n)]
    gain = sum(diffs) / n
    if gain <= EPS:
        return Verdict(False, gain, 0.0, n, f"no gain ({gain:+.3f} on {n} rows)")
    var = sum((d - gain) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    if var <= EPS:
        t = math.inf if n > 1 else 0.0
    else:
        t = gain / math.sqrt(var / n)
    if t >= z:
        return Verdict(True, gain, t, n, f"gain {gain:+.3f} on {n} rows (t={_fmt(t)} >= {z})")
    return Verdict(False, gain, t, n, f"gain {gain:+.3f} on {n} rows is within noise (t={_fmt(t)} < {z})")


def hopeless(incumbent: Sequence[float], partial: Sequence[float], *, best: float = 1.0, z: float = Z) -> bool:
    """True when `partial` (scores on the first rows) cannot pass the gate even if every
    remaining row scores `best` (the metric's maximum)."""
    rest = [best] * (len(incumbent) - len(partial))
    return not compare(incumbent, list(partial) + rest, z=z).accepted


def _fmt(t: float) -> str:
    return "inf" if math.isinf(t) else f"{t:.2f}"


__all__ = ["Verdict", "compare", "hopeless", "Z"]
