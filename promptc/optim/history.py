"""History entries: one JSON-able dict per training step (what `history.jsonl` holds).

Keys: step, batch (train indices), minibatch_scores, minibatch_score, failing,
backward_calls, gradients ({param: count}), proposals ([{param, kind, index, text,
reason, failing_before, failing_after, val, val_complete, accepted}]), accepted (param
names), val, best, accounting ({phase: {requests, errors, prompt_tokens,
completion_tokens, cost}}), seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

VOLATILE = ("seconds",)


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
