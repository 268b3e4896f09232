"""Prompt templates: `{name}` placeholders, `{{` and `}}` for literal braces.

The syntax is the subset of Python's `str.format` with bare names only, so a template
renders the same with `render()` here and with `template.format(**values)`. Both
frontends use `scan()` to find the placeholders (and where they are, for error
messages); the runtime uses `render()`, and the optimizer `placeholders()` to check a
rewritten prompt kept the names it must keep.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A malformed template; `offset` is the position in the text of the offending brace."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def scan(text: str) -> list[tuple[str, int, int]]:
    """The placeholders of `text` as (name, start, end) offsets of `{name}`, in order.

    Raises TemplateError on a brace that is neither a placeholder nor doubled.
    """
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "{":
            if i + 1 < n and text[i + 1] == "{":
                i += 2
                continue
            m = _NAME.match(text, i + 1)
            if m is None or m.end() >= n or text[m.end()] != "}":
                raise TemplateError(
                    "'{' must start a placeholder like {name} (write '{{' for a literal brace)", i
                )
            out.append((m.group(), i, m.end() + 1))
            i = m.end() + 1
        elif c == "}":
            if i + 1 < n and text[i + 1] == "}":
                i += 2
                continue
            raise TemplateError("single '}' in template (write '}}' for a literal brace)", i)
        else:
            i += 1
    return out


def placeholders(text: str) -> tuple[str, ...]:
    """The distinct placeholder names of a template, in first-use order."""
    seen: dict[str, None] = {}
    for name, _, _ in scan(text):
        seen.setdefault(name, None)
    return tuple(seen)


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill the placeholders with `str(values[name])` and undouble the escaped braces."""
    parts: list[str] = []
    last = 0
    for name, start, end in scan(text):
        parts.append(_unescape(text[last:start]))
        parts.append(str(values[name]))
        last = end
    parts.append(_unescape(text[last:]))
    return "".join(parts)


def escape(text: str) -> str:
    """A literal text as a template (braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def _unescape(s: str) -> str:
    return s.replace("{{", "{").replace("}}", "}")
