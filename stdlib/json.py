"""`std.json`: reading JSON out of model answers and writing values as JSON.

Each docstring says what the function does to its input, for the backward engine.
"""

from __future__ import annotations

import json as _json
from typing import Any

from promptc.runtime.jsontext import loads_tolerant  # re-exported: promptc.stdlib.json.loads_tolerant

__all__ = ["parse", "dumps", "get"]


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
