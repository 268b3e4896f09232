"""The source of a decorated Python function, parsed with `ast`, and the map from its
positions to spans in the real file (so that errors point at the user's own line)."""

from __future__ import annotations

import ast
import inspect
import linecache
import re
import textwrap
from typing import Callable

from promptc.errors import CompileError, Span


class _Source:
    """A function's source, parsed, with the map from its positions to the real file."""

    def __init__(self, file: str, text: str, first_line: int, indent: int, tree: ast.Module, lines: list[str]):
        self.file, self.text, self.first_line, self.indent, self.tree, self.lines = file, text, first_line, indent, tree, lines

    @classmethod
    def of(cls, fn: Callable) -> "_Source":
        file = inspect.getsourcefile(fn) or inspect.getfile(fn)
        try:
            lines, first = inspect.getsourcelines(fn)
        except (OSError, TypeError) as e:
            raise CompileError(f"cannot read the source of '{fn.__name__}': {e}", None) from None
        src = "".join(lines)
        dedented = textwrap.dedent(src)
        first_text = next((l for l in lines if l.strip()), "")
        first_dedented = next((l for l in _lines(dedented, keepends=True) if l.strip()), "")
        indent = len(first_text) - len(first_dedented)
        text = "".join(linecache.getlines(file)) or src
        try:
            tree = ast.parse(dedented)
        except SyntaxError as e:  # pragma: no cover - Python already compiled it
            raise CompileError(f"cannot parse '{fn.__name__}': {e.msg}", Span(file, first + (e.lineno or 1) - 1, 1)) from None
        return cls(file, text, first, indent, tree, _lines(dedented))

    def span(self, node: ast.AST) -> Span:
        line = node.lineno  # type: ignore[attr-defined]
        end_line = getattr(node, "end_lineno", None) or line
        col = self._chars(line, node.col_offset)  # type: ignore[attr-defined]
        end = getattr(node, "end_col_offset", None)
        end_col = self._chars(end_line, end) if end is not None else col + 1
        return Span(
            self.file,
            line + self.first_line - 1,
            col + self.indent + 1,
            end_line + self.first_line - 1,
            end_col + self.indent + 1,
        )

    def _chars(self, line: int, byte_offset: int) -> int:
        if 1 <= line <= len(self.lines):
            return len(self.lines[line - 1].encode("utf-8")[:byte_offset].decode("utf-8", "replace"))
        return byte_offset

    def error(self, message: str, node: ast.AST) -> CompileError:
        return CompileError(message, self.span(node), self.text)


def _lines(text: str, keepends: bool = False) -> list[str]:
    """`text` split where Python ends a line (\\n, \\r\\n, \\r): the numbering `ast` uses.
    str.splitlines() also splits at \\f, \\x1c-\\x1e, \\x85, U+2028 and U+2029, which a
    string literal may hold."""
    found = _LINE.findall(text)
    return found if keepends else [line.rstrip("\r\n") for line in found]


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _def_span(fn: Callable) -> Span | None:
    try:
        lines, first = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or ""
    except (OSError, TypeError):
        return None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith(("def ", "async def ")):
            col = len(line) - len(stripped) + 1
            return Span(file, first + i, col, first + i, col + len(stripped.rstrip()))
    return Span(file, first, 1)


def A_join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)
