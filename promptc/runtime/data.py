"""Results as JSON Lines: one JSON object per line (reading data is `promptc.data`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(dumps_line(row) + "\n")
    tmp.replace(path)


def dumps_line(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)
