"""Source spans and the one exception a wrong program raises: `CompileError`.

A `CompileError` names file, line and column and renders like a real compiler::

    trec.pflow:12:9: error: unknown name 'questoin'
      let raw = classify(questoin)
                         ^~~~~~~~

Errors where a *sample* can fail (a model that times out, an answer that does not parse)
are values in the runtime, never exceptions; see `promptc.runtime`.
"""

from __future__ import annotations

from attrs import frozen


@frozen
class Span:
    """A region of a source file. Lines and columns are 1-based; `end_col` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class CompileError(Exception):
    """A located error in a workflow's source (a `.pflow` file or a decorated function)."""

    def __init__(self, message: str, span: Span | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source

    def with_source(self, source: str, file: str | None = None) -> "CompileError":
        """Attach the source text the span points into, unless it has one; with `file`,
        only when the span is in that file (an error inside an imported workflow keeps
        reading its own file)."""
        if self.source is None and (file is None or self.span is None or self.span.file == file):
            self.source = source
        return self

    def render(self) -> str:
        """`FILE:LINE:COL: error: MESSAGE`, then the source line and a caret.

        Lines are counted on `\n` only, as the parser counts them (a form feed or U+2028
        inside a line does not start a new one). A line longer than `_WIDTH` characters is
        shown as a window around the caret, and a message quoting a huge name is shortened,
        so that an error never prints more than a few hundred characters.
        """
        message = _clip(self.message, 2 * _WIDTH)
        if self.span is None:
            return f"error: {message}"
        head = f"{self.span}: error: {message}"
        line_text = _source_line(self.source, self.span)
        if line_text is None:
            return head
        col = max(1, self.span.col)
        width = 1
        if self.span.end_line in (None, self.span.line) and self.span.end_col:
            width = max(1, self.span.end_col - col)
        width = min(width, max(1, len(line_text) - col + 1))
        line_text, col, width = _window(line_text, col, width)
        caret = " " * (col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n  {line_text}\n  {caret}"

    def __str__(self) -> str:
        return self.render()


_WIDTH = 120  # the widest source excerpt an error shows


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n // 2] + " ... " + text[-(n // 2) :]


def _window(line: str, col: int, width: int) -> tuple[str, int, int]:
    """At most `_WIDTH` characters of `line` around columns `col`..`col+width`, `...` marking cuts."""
    if len(line) <= _WIDTH:
        return line, col, width
    width = min(width, _WIDTH // 2)
    start = max(0, min(col - 1 - _WIDTH // 3, len(line) - _WIDTH))
    end = start + _WIDTH
    shown = line[start:end]
    if start > 0:
        shown = "..." + shown
        col = col - start + 3
    else:
        col = col - start
    if end < len(line):
        shown += "..."
    return shown, col, width


def _source_line(source: str | None, span: Span) -> str | None:
    if source is None:
        try:
            with open(span.file, encoding="utf-8-sig") as f:
                source = f.read()
        except (OSError, UnicodeDecodeError, ValueError):
            return None
    if span.line < 1:
        return None
    # the line the parser means: lines end at "\n" only (not at FF, VT, NEL, U+2028, ...)
    start = 0
    for _ in range(span.line - 1):
        start = source.find("\n", start) + 1
        if start == 0:
            return None
    end = source.find("\n", start)
    text = source[start:] if end < 0 else source[start:end]
    text = text.removesuffix("\r")
    # one character per column, as the parser counts them: tabs and control characters
    # (which would move or erase the terminal's caret line) are shown as one space
    return "".join(" " if (c < " " or c == "\x7f") else c for c in text)
