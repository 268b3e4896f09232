"""What every parser action shares: the state of one parse (its file, the first error an
action raised), the extent of a rule, the reserved-word check and template placeholders.

The actions themselves are `parse_decls` (declarations and types) and `parse_body`
(statements and expressions), both subclasses of `ActionBase`; `parse_actions` joins them
into the callbacks lark calls.
"""

from __future__ import annotations

import threading
from typing import Any

from lark import Token

from promptc import template as T
from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.frontend.parse_values import Reduced, decode_string, first_present, last_present, tok_span

# Words that can never be the name of a declaration or a variable.
RESERVED = frozenset("use model param llm workflow train let for in loop break if else return via and or not true false".split())


class ParseState(threading.local):
    """Per thread: the file being parsed and the first `CompileError` an action raised."""

    file: str = "<string>"
    error: CompileError | None = None


class ActionBase:
    """The helpers of the actions; `state` is shared by every action of one parser.

    Every public attribute of a subclass that this class does not define is an action,
    named after the grammar rule (or alias) it reduces."""

    def __init__(self) -> None:
        self.state = ParseState()

    def node(self, v: Any, c: list) -> Reduced:
        """`v` with the extent of the children `c` (missing optionals skipped)."""
        return Reduced(v, first_present(c), last_present(c))

    def between(self, first: Any, last: Any) -> Span:
        """The span from the start of `first` to the end of `last` (tokens or `Reduced`s)."""
        return Span(self.state.file, first.line, first.column, last.end_line, last.end_column)

    def span(self, c: list) -> Span:
        first = first_present(c)
        if first is None:
            return Span(self.state.file, 1, 1)
        return self.between(first, last_present(c))

    def tok_span(self, tok: Token) -> Span:
        return tok_span(self.state.file, tok)

    def checked_name(self, tok: Token) -> str:
        """A declared or bound name: not a reserved word."""
        if str(tok) in RESERVED:
            raise CompileError(f"'{tok}' is a reserved word and cannot be used as a name", self.tok_span(tok))
        return str(tok)

    def template(self, tok: Token, role: str, span: Span) -> A.Message:
        raw = str(tok)
        try:
            found = T.scan(raw)
        except T.TemplateError as e:
            raise CompileError(f"bad template: {e.message}", self.offset_span(tok, e.offset, e.offset + 1)) from None
        holes = tuple(A.Placeholder(name, self.offset_span(tok, s, e)) for name, s, e in found)
        return A.Message(role=role, template=decode_string(raw), placeholders=holes, span=span)

    def offset_span(self, tok: Token, start: int, end: int) -> Span:
        """The span of characters `start:end` of the token's text."""
        raw = str(tok)
        before = raw[:start]
        nl = before.count("\n")
        col = tok.column + start if nl == 0 else start - before.rfind("\n")
        return Span(self.state.file, tok.line + nl, col, tok.line + nl, col + (end - start))
