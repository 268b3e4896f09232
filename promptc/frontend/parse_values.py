"""The values the parser's actions produce and share: `Reduced` (a reduced rule's value with
the extent of its tokens), spans of tokens, string and integer literals, and `shorten` (a
token as an error message quotes it).

The bottom of the parser's modules: it imports no other `parse_*` module.
"""

from __future__ import annotations

import textwrap
from typing import Any

from lark import Token

from promptc.errors import CompileError, Span

# ---- strings -----------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def decode_string(raw: str) -> str:
    """The value of a STRING or LONG_STRING token.

    `"..."` knows the escapes \\n \\t \\" \\\\ (any other backslash is kept as is).
    `\"\"\"...\"\"\"` is verbatim, minus the first newline, the common indentation and the
    trailing whitespace, so that a long prompt can be indented with the code.
    """
    if raw.startswith('"""'):
        inner = raw[3:-3]
        if inner.startswith("\r\n"):
            inner = inner[2:]
        elif inner.startswith("\n"):
            inner = inner[1:]
        return textwrap.dedent(inner).rstrip()
    inner = raw[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner) and inner[i + 1] in _ESCAPES:
            out.append(_ESCAPES[inner[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def shorten(s: str) -> str:
    """The first line of `s`, cut to 30 characters: how an error message quotes a token."""
    s = s.splitlines()[0] if s else s
    return s if len(s) <= 30 else s[:27] + "..."


# ---- reduced values and their extent -----------------------------------------------------


class Reduced:
    """A reduced rule's value and the extent of its tokens (same attribute names as `Token`)."""

    __slots__ = ("v", "line", "column", "end_line", "end_column")

    def __init__(self, v: Any, first: Any, last: Any):
        self.v = v
        self.line = first.line
        self.column = first.column
        self.end_line = last.end_line
        self.end_column = last.end_column


def tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


def first_present(c: list) -> Any:
    """The first child that is not a missing optional (None)."""
    for x in c:
        if x is not None:
            return x
    return None


def last_present(c: list) -> Any:
    for x in reversed(c):
        if x is not None:
            return x
    return None


def values(c: list) -> list:
    """The values of the sub-rules among `c` (tokens and missing optionals dropped)."""
    return [x.v for x in c if type(x) is Reduced]


def join_spans(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)


def int_literal(tok: Token, file: str) -> int:
    """An INT token's value; integers are 64-bit (they are saved in `.pfc` artifacts)."""
    text = str(tok)
    digits = text.lstrip("-").lstrip("0") or "0"
    # more than 19 digits is out of range; checked first, as int() refuses over 4,300 digits
    value = None if len(digits) > 19 else -int(digits) if text.startswith("-") else int(digits)
    if value is None or not -(2**63) <= value < 2**63:
        raise CompileError(f"integer {shorten(text)} is out of range (integers are 64-bit)", tok_span(file, tok))
    return value
