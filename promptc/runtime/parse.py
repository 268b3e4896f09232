"""Answer text -> a value of the `llm`'s declared output type.

`parse_answer(text, type)` returns `(value, None)` or `(None, error)`: an answer that does
not parse is a sample error (with the raw text kept by the interpreter), never an
exception. The parser is tolerant of what small models write:

- text: the answer stripped.
- enum: the label the answer *is* (case-insensitive, ignoring punctuation and quotes), else
  the label it mentions first as a whole word ("Label: HUM." -> HUM); else an error.
- int / float: the first number in the answer (a few number words too: "three" -> 3).
- bool: the first yes/no/true/false in the answer.
- record / list / json: the JSON in the answer (whole text, a fenced block, or the first
  {...} / [...]), then record fields are checked (a missing field is an error) and field
  values coerced to their declared types.

`coerce(value, type)` is the same conversion for values that are already data (dataset
inputs, function results, JSON fields).
"""

from __future__ import annotations

import json
import re
from typing import Any

from promptc.runtime.jsontext import loads_tolerant
from promptc.types import Type

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_BOOL = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)


def parse_answer(text: str | None, t: Type) -> tuple[Any, str | None]:
    if text is None:
        return None, "the model returned no text"
    k = t.kind
    if k == "text":
        return text.strip(), None
    if k == "enum":
        return _enum(text, t.labels)
    if k in ("int", "float"):
        return _number(text, k)
    if k == "bool":
        m = _BOOL.search(text)
        if m is None:
            return None, f"expected yes/no (true/false), got {_short(text)}"
        return m.group(1).lower() in ("yes", "true"), None
    value, error = loads_tolerant(text)
    if error is not None:
        # A json output may legitimately be a bare string answer.
        if k == "json" and text.strip():
            return text.strip(), None
        return None, f"{error}: {_short(text)}"
    return coerce(value, t)


def coerce(value: Any, t: Type, where: str = "") -> tuple[Any, str | None]:
    """Convert data to type `t` where the meaning is unambiguous; else an error."""
    k = t.kind
    at = f" at {where}" if where else ""
    if k == "json":
        return value, None
    if value is None:
        return None, f"missing value{at} (expected {t})"
    if k == "text":
        return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)), None
    if k == "enum":
        if isinstance(value, str):
            v, err = _enum(value, t.labels)
            return v, (err + at if err else None)
        return None, f"expected one of {', '.join(t.labels)}{at}, got {value!r}"
    if k == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str):
            v, err = parse_answer(value, t)
            return v, (err + at if err else None)
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value), None
        return None, f"expected a bool{at}, got {value!r}"
    if k in ("int", "float"):
        if isinstance(value, bool):
            return None, f"expected {k}{at}, got {value!r}"
        if isinstance(value, (int, float)):
            if k == "int":
                if float(value).is_integer():
                    return int(value), None
                return None, f"expected an int{at}, got {value!r}"
            return float(value), None
        if isinstance(value, str):
            v, err = _number(value, k)
            return v, (err + at if err else None)
        return None, f"expected {k}{at}, got {value!r}"
    if k == "list":
        if not isinstance(value, list):
            if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
                value = next(iter(value.values()))  # {"items": [...]}: models like to wrap lists
            else:
                return None, f"expected a list{at}, got {_short(json.dumps(value))}"
        out = []
        for i, item in enumerate(value):
            v, err = coerce(item, t.elem, f"{where}[{i}]") if t.elem is not None else (item, None)
            if err:
                return None, err
            out.append(v)
        return out, None
    if k == "record":
        if not isinstance(value, dict):
            return None, f"expected a JSON object with fields {', '.join(n for n, _ in t.fields)}{at}"
        missing = [n for n, _ in t.fields if n not in value]
        if missing:
            return None, f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}{at}"
        rec = {}
        for n, ft in t.fields:
            v, err = coerce(value[n], ft, f"{where}.{n}" if where else n)
            if err:
                return None, err
            rec[n] = v
        return rec, None
    return value, None


def _enum(text: str, labels: tuple[str, ...]) -> tuple[Any, str | None]:
    bare = text.strip().strip(" \t\n.,;:!?\"'`*()[]{}").lower()
    for lab in labels:
        if bare == lab.lower():
            return lab, None
    best: tuple[int, int] | None = None
    found = None
    for lab in labels:
        m = re.search(r"(?<![\w])" + re.escape(lab) + r"(?![\w])", text, re.IGNORECASE)
        if m is not None and (best is None or (m.start(), -len(lab)) < best):
            best, found = (m.start(), -len(lab)), lab
    if found is not None:
        return found, None
    return None, f"answer is not one of {', '.join(labels)}: {_short(text)}"


def _number(text: str, kind: str) -> tuple[Any, str | None]:
    m = _NUMBER.search(text)
    if m is None:
        for w in re.findall(r"[A-Za-z]+", text):
            if w.lower() in _WORDS:
                n = _WORDS[w.lower()]
                return (n if kind == "int" else float(n)), None
        return None, f"expected a number, got {_short(text)}"
    raw = m.group(0).replace(",", "")
    try:
        num = float(raw)
    except ValueError:
        return None, f"expected a number, got {_short(text)}"
    if kind == "int":
        if not num.is_integer():
            return None, f"expected an integer, got {raw}"
        return int(num), None
    return num, None


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
