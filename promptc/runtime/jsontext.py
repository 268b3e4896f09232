"""Reading the JSON value out of a model's answer, tolerant of how models write it.

Small models wrap JSON in a ```json fence, put prose around it, or write raw newlines
inside strings. `loads_tolerant` accepts those; the runtime's answer parser
(`promptc.runtime.parse`), the backward engine and the optimizer's proposal extraction use
it, and the user-facing `std.json.parse` is built on it.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def loads_tolerant(text: str) -> tuple[Any, str | None]:
    """(value, None) for the JSON found in `text`, or (None, error message).

    Tries, in order: the whole text, each fenced code block, then the first balanced
    {...} or [...] span. Raw newlines and tabs inside strings (which strict JSON forbids
    and small models write) are accepted.
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
            return json.loads(cand, strict=False), None
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
