"""History entries: one JSON-able dict per training step (what `history.jsonl` holds).

`Round` is one entry as the trainer builds it, with its `Attempt`s; `Round.to_data()` is
the dict.

Keys: step, batch (train indices), minibatch_scores, minibatch_score, failing,
backward_calls, gradients ({param: count}), proposals ([{param, kind, index, text,
reason, failing_before, failing_after, val, val_complete, accepted}]), accepted (param
names), val, best, accounting ({phase: {requests, errors, prompt_tokens,
completion_tokens, cost}}), seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from attrs import field, frozen

VOLATILE = ("seconds",)


@frozen
class Attempt:
    """One proposal and what became of it (a history entry's `proposals` item)."""

    param: str
    kind: str
    text: str | None
    accepted: bool = False
    reason: str = ""
    rejections: tuple[str, ...] = ()  # filters that refused optimizer replies on the way
    failing_before: float | None = None
    failing_after: float | None = None
    val: float | None = None
    val_rows: int = 0
    gain: float | None = None
    info: dict = field(factory=dict)

    def to_data(self) -> dict:
        d = {
            "param": self.param, "kind": self.kind, "text": self.text, "accepted": self.accepted,
            "reason": self.reason, "rejections": list(self.rejections), "val": self.val, "val_rows": self.val_rows,
        }
        if self.failing_before is not None:
            d["failing_before"], d["failing_after"] = self.failing_before, self.failing_after
        if self.gain is not None:
            d["gain"] = round(self.gain, 6)
        d.update(self.info)
        return d


@frozen
class Round:
    """One history entry."""

    step: int
    kind: str  # "demos" | "prompts"
    attempts: tuple[Attempt, ...]
    best: float
    batch: tuple[int, ...] = ()
    minibatch_scores: tuple[float, ...] = ()
    failing: int = 0  # minibatch samples below the gradient threshold
    backward_calls: int = 0
    gradients: dict = field(factory=dict)
    accounting: dict = field(factory=dict)
    seconds: float = 0.0

    @property
    def accepted(self) -> list[str]:
        return [a.param for a in self.attempts if a.accepted]

    def to_data(self) -> dict:
        filters: dict[str, int] = {}
        for a in self.attempts:
            for f in a.rejections:
                filters[f] = filters.get(f, 0) + 1
        return {
            "step": self.step, "kind": self.kind, "batch": list(self.batch),
            "minibatch_scores": list(self.minibatch_scores),
            "minibatch_score": (sum(self.minibatch_scores) / len(self.minibatch_scores)) if self.minibatch_scores else None,
            "failing": self.failing, "backward_calls": self.backward_calls, "gradients": dict(self.gradients),
            "proposals": [a.to_data() for a in self.attempts], "accepted": self.accepted, "filtered": filters,
            "val": self.best, "best": self.best, "accounting": self.accounting, "seconds": self.seconds,
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
