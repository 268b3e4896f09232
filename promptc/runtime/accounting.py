"""What the model calls cost: counts per (phase, model).

The engine adds to an `Accounting` after every request; the CLI prints its
`summary_line()`, the trainer stores `to_data()` in its checkpoints and enforces budgets
on `totals()`.

Definitions (one request = one `Engine.call`):
- calls: requests that went to a model (not answered from the cache), whether they
  succeeded or not. A re-run answered entirely from the cache has `calls == 0`.
- cache_hits: requests answered from the cache (they cost nothing and add no tokens).
- errors: requests that ended as an error after their retries (a subset of `calls`).
- retries: extra attempts beyond the first, over all requests.
- prompt_tokens / completion_tokens / cost: what the new calls used, as the provider
  reported it; cost is litellm's price when it knows the model, 0 otherwise.

So `calls + cache_hits` is the number of requests and `calls - errors + cache_hits` the
number answered.

The counters are guarded by a lock: safe from several threads and from many asyncio
tasks.
"""

from __future__ import annotations

import threading
from typing import Any

from attrs import fields, frozen

@frozen
class Counts:
    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)})

    def __sub__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(Counts)})

    @property
    def requests(self) -> int:
        return self.calls + self.cache_hits

    @property
    def answered(self) -> int:
        return self.calls - self.errors + self.cache_hits

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Counts)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Counts:
        known = {f.name for f in fields(Counts)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Accounting:
    """Thread- and task-safe counters keyed by (phase, model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], Counts] = {}

    def add(self, phase: str, model: str, **amounts: Any) -> None:
        """Add `amounts` (any of the `Counts` fields) to the (phase, model) row."""
        delta = Counts(**amounts)
        key = (phase, model)
        with self._lock:
            self._rows[key] = self._rows.get(key, Counts()) + delta

    def rows(self) -> list[tuple[str, str, Counts]]:
        """(phase, model, counts) for every row, sorted."""
        with self._lock:
            items = sorted(self._rows.items())
        return [(phase, model, counts) for (phase, model), counts in items]

    def totals(self, phase: str | None = None, model: str | None = None) -> Counts:
        total = Counts()
        for p, m, counts in self.rows():
            if (phase is None or p == phase) and (model is None or m == model):
                total = total + counts
        return total

    def by_phase(self) -> dict[str, Counts]:
        out: dict[str, Counts] = {}
        for p, _m, counts in self.rows():
            out[p] = out.get(p, Counts()) + counts
        return out

    def by_model(self) -> dict[str, Counts]:
        out: dict[str, Counts] = {}
        for _p, m, counts in self.rows():
            out[m] = out.get(m, Counts()) + counts
        return out

    def snapshot(self) -> Accounting:
        """An independent copy (e.g. to report what one run added: `acc.since(snap)`)."""
        return Accounting.from_data(self.to_data())

    def since(self, earlier: Accounting) -> Accounting:
        """What was added after `earlier` (a snapshot of this accounting)."""
        before = {(p, m): c for p, m, c in earlier.rows()}
        out = Accounting()
        for p, m, counts in self.rows():
            diff = counts - before.get((p, m), Counts())
            if diff != Counts():
                out._rows[(p, m)] = diff
        return out

    def merge(self, other: Accounting) -> None:
        for p, m, counts in other.rows():
            self.add(p, m, **counts.to_data())

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def to_data(self) -> dict[str, Any]:
        """Plain data (msgpack/JSON-safe) for checkpoints."""
        return {"rows": [{"phase": p, "model": m, **c.to_data()} for p, m, c in self.rows()]}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Accounting:
        acc = cls()
        for row in data.get("rows", ()):
            row = dict(row)
            phase, model = row.pop("phase"), row.pop("model")
            acc._rows[(phase, model)] = Counts.from_data(row)
        return acc

    def summary_line(self, phase: str | None = None) -> str:
        """E.g. "calls 12 (cache hits 8) · tokens 3,456 in / 210 out · $0.0000"."""
        t = self.totals(phase)
        line = (
            f"calls {t.calls:,} (cache hits {t.cache_hits:,}) · "
            f"tokens {t.prompt_tokens:,} in / {t.completion_tokens:,} out · ${t.cost:.4f}"
        )
        extras = []
        if t.errors:
            extras.append(f"errors {t.errors:,}")
        if t.retries:
            extras.append(f"retries {t.retries:,}")
        return line + (" · " + " · ".join(extras) if extras else "")

    def __repr__(self) -> str:
        return f"Accounting({self.summary_line()})"


__all__ = ["Accounting", "Counts"]
