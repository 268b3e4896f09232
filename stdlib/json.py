"""`std.json`: reading JSON out of model answers and writing values as JSON.

Each docstring says what the function does to its input, for the backward engine.
"""

from __future__ import annotations

import json as _json
import re
from typing import Any

__all__ = ["parse", "dumps", "get"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse(s: str) -> Any:
    """Parses the text as JSON and returns the value. Tolerant of model habits: a fenced
    ```json block, or prose around the first {...} or [...] in the text, are accepted.
    Raises ValueError when no JSON value can be found, so the answer text must contain
    valid JSON."""
    value, error = loads_tolerant(str(s))
    if error is not None:
        raise ValueError(error)
    return value


def dumps(x: Any) -> str:
    """Writes the value as compact JSON text (keys in their order, non-ASCII kept)."""
    return _json.dumps(x, ensure_ascii=False)


def get(x: Any, key: str) -> Any:
    """Returns field `key` of a JSON object (or item `key` of a list when key is an integer
    string); returns None when the field is missing, so a wrong output may mean the object
    lacked the field."""
    if isinstance(x, dict):
        return x.get(key)
    if isinstance(x, list):
        try:
            return x[int(key)]
        except (ValueError, IndexError):
            return None
    return None


def loads_tolerant(text: str) -> tuple[Any, str | None]:
    """(value, None) for the JSON found in `text`, or (None, error message).

    Tries, in order: the whole text, each fenced code block, then the first balanced
    {...} or [...] span. Raw newlines and tabs inside strings (which strict JSON forbids
    and small models write) are accepted. Shared with the runtime's answer parser.
    """
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for opener in "{[":
        span = _balanced(text, opener)
        if span is not None:
            candidates.append(span)
    for cand in candidates:
        if not cand:
            continue
        try:
            return _json.loads(cand, strict=False), None
        except ValueError:
            continue
    return None, "no JSON value found in the answer"


def _balanced(text: str, opener: str) -> str | None:
    closer = "}" if opener == "{" else "]"
    start = text.find(opener)
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == opener:
                depth += 1
            elif c == closer:
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find(opener, start + 1)
    return None
