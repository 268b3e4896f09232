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
        """`FILE:LINE:COL: error: MESSAGE`, then the source line and a caret."""
        if self.span is None:
            return f"error: {self.message}"
        head = f"{self.span}: error: {self.message}"
        line_text = _source_line(self.source, self.span)
        if line_text is None:
            return head
        width = 1
        if self.span.end_line in (None, self.span.line) and self.span.end_col:
            width = max(1, self.span.end_col - self.span.col)
        width = min(width, max(1, len(line_text) - self.span.col + 1))
        caret = " " * (self.span.col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n  {line_text}\n  {caret}"

    def __str__(self) -> str:
        return self.render()


def _source_line(source: str | None, span: Span) -> str | None:
    if source is None:
        try:
            with open(span.file, encoding="utf-8") as f:
                source = f.read()
        except OSError:
            return None
    lines = source.splitlines()
    if not 1 <= span.line <= len(lines):
        return None
    return lines[span.line - 1].expandtabs(1)
