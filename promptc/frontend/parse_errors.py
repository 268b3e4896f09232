"""Parse errors written for people: a lark exception -> a located `CompileError`
("unexpected 'x', expected one of ...", an unterminated string, an unclosed bracket).

The words for the grammar's keywords and punctuation come from its terminals
(`terminal_words`), which the parser hands over with the error."""

from __future__ import annotations

from typing import Iterable, Mapping

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import TerminalDef

from promptc.errors import CompileError, Span
from promptc.frontend.parse_values import shorten


_DESCRIBE = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "INT": "an integer",
    "FLOAT": "a number",
    "_NL": "a newline or ';'",
    "SEMI": "';'",
    "MSG_ROLE": "'system', 'user' or 'assistant'",
    "TRAIN_KEY": "'metric', 'answer', 'teacher', 'backward' or 'optimizer'",
    "SUPPORTS": "'supports'",
    "COMP_OP": "a comparison",
    "TRAINABLE": "'trainable'",
    "$END": "end of file",
}
_EXPR_START = {"NAME", "STRING", "INT", "LPAR", "LSQB"}
# Operators that may always follow a complete expression: not worth listing when
# something that ends it (a separator, a closing bracket) is also expected.
_CONTINUATIONS = {"COMP_OP", "PLUS", "DOT", "LSQB", "LPAR", "AND", "OR"}


def terminal_words(terminals: Iterable[TerminalDef]) -> dict[str, str]:
    """Terminal name -> how a message quotes it, for the terminals that are fixed strings."""
    return {t.name: repr(t.pattern.value).replace('"', "'") for t in terminals if t.pattern.type == "str"}


def _describe_expected(names: set[str], text: Mapping[str, str]) -> str:
    names = {n for n in names if n not in ("SEMI", "COMMENT")}
    if not _EXPR_START <= names and names - _CONTINUATIONS:
        names -= _CONTINUATIONS
    words: list[str] = []
    if _EXPR_START <= names:
        words.append("an expression")
        names -= _EXPR_START | {"LONG_STRING", "FLOAT", "TRUE", "FALSE", "NOT"}
    rest = sorted({_DESCRIBE.get(n) or text.get(n) or n.lower() for n in names})
    # Keywords and punctuation after descriptions, for a stable, readable order.
    rest.sort(key=lambda w: (w.startswith("'"), w))
    words += rest
    if not words:
        return ""
    if len(words) == 1:
        return f", expected {words[0]}"
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", expected one of " + ", ".join(words)


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "';'" if str(tok) == ";" else "end of line"
    if tok.type in ("STRING", "LONG_STRING"):
        return "string " + shorten(str(tok))
    return "'" + shorten(str(tok)) + "'"


def parse_error(
    e: UnexpectedInput, source: str, file: str, words: Mapping[str, str], opened: list | None = None
) -> CompileError:
    """The error for `e`; `words`: `terminal_words` of the grammar; `opened`: the brackets
    the post-lexer saw opened and not closed."""
    if isinstance(e, UnexpectedCharacters):
        ch = source[e.pos_in_stream] if 0 <= e.pos_in_stream < len(source) else ""
        span = Span(file, e.line, e.column, e.line, e.column + 1)
        if ch == '"':
            return CompileError("unterminated string (a \"...\" string ends on its line; use \"\"\"...\"\"\" for several lines)", span, source)
        return CompileError(f"unexpected character {ch!r}" + _describe_expected(set(e.allowed or ()), words), span, source)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            span = _end_span(source, file)
        else:
            end_col = tok.end_column if tok.end_line == tok.line and tok.end_column else tok.column + 1
            span = Span(file, tok.line, tok.column, tok.line, end_col)
            if tok.type == "_NL" and str(tok) != ";":
                span = Span(file, tok.line, tok.column, tok.line, tok.column + 1)
        expected = set(e.accepts or e.expected or ())
        msg = f"unexpected {_describe_token(tok)}" + _describe_expected(expected, words)
        if opened and (tok.type == "$END" or (str(opened[-1]) in "([" and tok.line > opened[-1].line)):
            b = opened[-1]
            msg += f" (the '{b}' at line {b.line}, column {b.column} is not closed)"
        return CompileError(msg, span, source)
    if isinstance(e, UnexpectedEOF):
        return CompileError("unexpected end of file" + _describe_expected(set(e.expected or ()), words), _end_span(source, file), source)
    return CompileError(f"syntax error: {e}", Span(file, getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1), source)


def _end_span(source: str, file: str) -> Span:
    lines = source.rstrip().split("\n")  # lines as lark counts them: "\n" only
    return Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
