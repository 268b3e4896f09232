"""Datasets as JSON Lines: one JSON object per line (blank lines ignored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable


class DataError(Exception):
    """A dataset file that cannot be read: message names the file and line."""


def read_jsonl(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file. Errors name `FILE:LINE:COL`: bad JSON, a line that is
    not an object, bytes that are not UTF-8. A UTF-8 byte-order mark is ignored."""
    rows: list[dict[str, Any]] = []
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            if limit is not None and len(rows) >= limit:
                break
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                col = len(raw[: e.start].decode("utf-8", "replace")) + 1
                raise DataError(f"{path}:{lineno}:{col}: invalid UTF-8 byte 0x{raw[e.start]:02X}") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}:{e.colno}: not valid JSON: {e.msg}") from None
            except ValueError as e:  # e.g. a number too long to convert
                raise DataError(f"{path}:{lineno}: not valid JSON: {e}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}:1: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


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
