"""Prompt templates: `{name}` placeholders, `{{` and `}}` for literal braces.

The syntax is the subset of Python's `str.format` with bare names only, so a template
renders the same with `render()` here and with `template.format(**values)`. This is the
one implementation of it; every stage uses it:

- the frontends (`promptc.frontend`) `scan()` a template for its placeholders and where
  they are, for error messages; the resolve pass checks what they name;
- the runtime (`promptc.runtime.render`) `render()`s an `llm`'s messages;
- the optimizer (`promptc.optim.extract`) checks that a rewritten prompt kept the
  `placeholders()` of the current one.

`strict=True` (the compiler's reading) refuses a brace that is neither a placeholder nor
doubled. `strict=False` reads any text, as the runtime and the optimizer must (a prompt
an optimizer wrote, a template from an artifact): a stray brace is text, and `render`
leaves a placeholder it has no value for as written.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A malformed template; `offset` is the position in the text of the offending brace."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def scan(text: str, *, strict: bool = True) -> list[tuple[str, int, int]]:
    """The placeholders of `text` as (name, start, end) offsets of `{name}`, in order.

    Strict: raises TemplateError on a brace that is neither a placeholder nor doubled.
    """
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c not in "{}":
            i += 1
            continue
        if i + 1 < n and text[i + 1] == c:  # `{{` or `}}`: a literal brace
            i += 2
            continue
        m = _NAME.match(text, i + 1) if c == "{" else None
        if m is not None and m.end() < n and text[m.end()] == "}":
            out.append((m.group(), i, m.end() + 1))
            i = m.end() + 1
            continue
        if strict and c == "{":
            raise TemplateError(_bad_open(text, i), i)
        if strict:
            raise TemplateError("single '}' in template (write '}}' for a literal brace)", i)
        i += 1
    return out


def placeholders(text: str, *, strict: bool = True) -> tuple[str, ...]:
    """The distinct placeholder names of a template, in first-use order."""
    return tuple(dict.fromkeys(name for name, _, _ in scan(text, strict=strict)))


def render(text: str, values: Mapping[str, Any], *, show: Callable[[Any], str] = str, strict: bool = True) -> str:
    """Fill the placeholders with `show(values[name])` and undouble the escaped braces.

    Strict: a name without a value is a KeyError. Otherwise it stays as written.
    """
    parts: list[str] = []
    last = 0
    for name, start, end in scan(text, strict=strict):
        parts.append(_unescape(text[last:start]))
        if name in values or strict:
            parts.append(show(values[name]))
        else:
            parts.append(text[start:end])
        last = end
    parts.append(_unescape(text[last:]))
    return "".join(parts)


def without_placeholders(text: str) -> str:
    """`text` with its `{name}` placeholders cut out, everything else as written."""
    parts: list[str] = []
    last = 0
    for _, start, end in scan(text, strict=False):
        parts.append(text[last:start])
        last = end
    parts.append(text[last:])
    return "".join(parts)


def escape(text: str) -> str:
    """A literal text as a template (braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def _unescape(s: str) -> str:
    return s.replace("{{", "{").replace("}}", "}")


def _bad_open(text: str, i: int) -> str:
    close = text.find("}", i + 1)
    inner = text[i + 1 : close] if close != -1 else ""
    if inner.strip() and "{" not in inner and "\n" not in inner and len(inner) <= 40:
        return f"placeholder '{{{inner}}}' must be a plain name (write '{{{{' for a literal brace)"
    return "'{' must start a placeholder like {name} (write '{{' for a literal brace)"
