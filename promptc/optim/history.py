"""The history of a training run: one typed `Round` per round, with its `Attempt`s.

The trainer builds `Round` records and keeps them in its state (promptc.optim.state),
which the checkpoint saves through the codec like any other record. `entry(round)` is the
one view of a round as a JSON-able dict: what `history.jsonl`, the `.pfc`'s `history`
extra, the report and `promptc inspect --history` read. Its keys:

step, kind, batch (train indices), minibatch_scores, minibatch_score, failing,
backward_calls, gradients ({param: [{row, loop_step, node, text}]}: the feedback each param
received, `row` the training row it came from, `loop_step` the loop time step or None),
proposals ([{param, kind, text, verdict, accepted, reason, rejections, replies, val,
val_rows, failing_before, failing_after, gain, race, signature}], the last five only when
known; `race` is {entrants, first_rows, evaluations, standing: [[what, mean, rows]],
decided_by: "mean" | "prior"}), accepted (param names), filtered ({filter: replies refused}), val, best,
accounting ({phase: {requests, errors, prompt_tokens, completion_tokens, cost}}), seconds.

A proposal's `verdict` is one of `VERDICTS`: "refused" (no candidate: every optimizer reply
was refused by a filter, or a demo search kept the current value; `reason` says why),
"lost-minibatch" (it fixed no more than it broke on the failing minibatch samples),
"lost-gate" (its validation scores did not pass the gate: `val`, `val_rows`, `gain`) or
"accepted". `replies` holds every optimizer reply on the way ([{text, filter, reason}],
`filter` "" for the reply that became the candidate): a refused reply's full text is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrs import field, frozen

from promptc.runtime.accounting import Accounting

VOLATILE = ("seconds",)
VERDICTS = ("refused", "lost-minibatch", "lost-gate", "accepted")
DECISIONS = ("mean", "prior")  # how a race's final choice was made (`Race.decided_by`)


@frozen
class Feedback:
    """One textual gradient a param received: from training row `row`, at loop time step
    `loop_step` (None outside a loop) of node `node` (promptc.optim.backward.Gradient)."""

    row: int
    text: str
    node: str = ""
    loop_step: int | None = None


@frozen
class Reply:
    """One optimizer reply while proposing: the text taken from it (the whole reply when
    nothing could be extracted; None when the call failed), and the filter that refused it
    with its reason (promptc.optim.extract; `filter` "" when it became the candidate)."""

    text: str | None
    filter: str = ""
    reason: str = ""


@frozen
class Race:
    """How a demo search went (successive halving on training rows).

    `decided_by` is how the winner was told apart from the runner-up, one of `DECISIONS`:
    "mean" (the better mean on the race rows; ties: the current value, then fewer demos)
    or "prior" (the two were within noise of each other and the nearest-neighbour pool
    won: promptc.optim.race.final_pick)."""

    entrants: int
    first_rows: int
    evaluations: int  # (candidate, row) evaluations run
    standing: tuple[tuple[str, float, int], ...]  # (what, mean, rows) per entrant, best first (at most 8)
    decided_by: str = "mean"  # one of DECISIONS


@frozen
class Spend:
    """What one phase of a round asked for (requests count cache hits: a resumed run's
    history is the uninterrupted run's)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


def spent(acc: Accounting) -> dict[str, Spend]:
    """`acc` by phase."""
    return {
        p: Spend(c.requests, c.errors, c.prompt_tokens, c.completion_tokens, float(c.cost))
        for p, c in acc.by_phase().items()
    }


@frozen
class Attempt:
    """One proposal and what became of it (a history entry's `proposals` item)."""

    param: str
    kind: str  # "prompt" | "demos"
    text: str | None  # None: the optimizer proposed nothing (see `reason`)
    accepted: bool = False
    reason: str = ""
    rejections: tuple[str, ...] = ()  # filters that refused optimizer replies on the way
    failing_before: float | None = None  # the failing minibatch samples' total score, before
    failing_after: float | None = None  # ... and with the candidate
    val: float | None = None  # the candidate's mean on the validation rows it was scored on
    val_rows: int = 0
    gain: float | None = None  # mean paired gain over the incumbent (promptc.optim.gate)
    race: Race | None = None  # a demo search's race
    signature: str | None = None  # a demo candidate's value (promptc.optim.race.Choice.key)
    replies: tuple[Reply, ...] = ()  # every optimizer reply, in order (prompt proposals)

    @property
    def verdict(self) -> str:
        """One of `VERDICTS`."""
        if self.accepted:
            return "accepted"
        if self.text is None:
            return "refused"
        if self.failing_after is not None and self.val is None:
            return "lost-minibatch"
        return "lost-gate"


@frozen
class Round:
    """One round of training (one history entry)."""

    step: int
    kind: str  # "demos" | "prompts"
    attempts: tuple[Attempt, ...]
    best: float
    batch: tuple[int, ...] = ()
    minibatch_scores: tuple[float, ...] = ()
    failing: int = 0  # minibatch samples below the gradient threshold
    backward_calls: int = 0
    gradients: dict[str, tuple[Feedback, ...]] = field(factory=dict)  # the feedback per param
    accounting: dict[str, Spend] = field(factory=dict)  # by phase
    seconds: float = 0.0

    @property
    def accepted(self) -> list[str]:
        return [a.param for a in self.attempts if a.accepted]


def _proposal(a: Attempt) -> dict[str, Any]:
    d: dict[str, Any] = {
        "param": a.param, "kind": a.kind, "text": a.text, "verdict": a.verdict, "accepted": a.accepted,
        "reason": a.reason, "rejections": list(a.rejections),
        "replies": [{"text": r.text, "filter": r.filter, "reason": r.reason} for r in a.replies],
        "val": a.val, "val_rows": a.val_rows,
    }
    if a.failing_before is not None:
        d["failing_before"], d["failing_after"] = a.failing_before, a.failing_after
    if a.gain is not None:
        d["gain"] = round(a.gain, 6)
    if a.race is not None:
        r = a.race
        d["race"] = {"entrants": r.entrants, "first_rows": r.first_rows, "evaluations": r.evaluations,
                     "standing": [list(s) for s in r.standing], "decided_by": r.decided_by}
    if a.signature is not None:
        d["signature"] = a.signature
    return d


def entry(r: Round) -> dict[str, Any]:
    """The round as a history entry (the keys of the module doc)."""
    filters: dict[str, int] = {}
    for a in r.attempts:
        for f in a.rejections:
            filters[f] = filters.get(f, 0) + 1
    accounting = {
        p: {"requests": s.requests, "errors": s.errors, "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens, "cost": s.cost}
        for p, s in r.accounting.items()
    }
    return {
        "step": r.step, "kind": r.kind, "batch": list(r.batch),
        "minibatch_scores": list(r.minibatch_scores),
        "minibatch_score": (sum(r.minibatch_scores) / len(r.minibatch_scores)) if r.minibatch_scores else None,
        "failing": r.failing, "backward_calls": r.backward_calls,
        "gradients": {
            p: [{"row": f.row, "loop_step": f.loop_step, "node": f.node, "text": f.text} for f in fs]
            for p, fs in r.gradients.items()
        },
        "proposals": [_proposal(a) for a in r.attempts], "accepted": r.accepted, "filtered": filters,
        "val": r.best, "best": r.best, "accounting": accounting, "seconds": r.seconds,
    }


def stable(history: list[dict]) -> list[dict]:
    """The history without what varies between identical runs (wall time)."""
    return [{k: v for k, v in e.items() if k not in VOLATILE} for e in history]


def write_jsonl(path: str | Path, history: list[dict]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for e in history:
            f.write(json.dumps(e, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


__all__ = [
    "DECISIONS", "VERDICTS", "Attempt", "Feedback", "Race", "Reply", "Round", "Spend", "entry", "read_jsonl", "spent", "stable",
    "write_jsonl",
]
