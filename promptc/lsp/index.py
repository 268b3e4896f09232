"""What hover and go-to-definition need of one version of a document, as plain data.

The compile worker (`promptc.lsp.worker`) builds an `Index` from the parsed and compiled
document (`promptc.lsp.analysis.build_index`) and sends it as JSON; the server answers
hover and definition requests from it with a dictionary lookup, however large or slow to
compile the document is. Positions here are promptc's: 1-based lines and characters.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import frozen

from promptc.errors import Span

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

OPTION_HELP = {
    "base_url": "the API base the model's calls go to (an OpenAI-compatible server, or a provider's endpoint)",
    "key_env": "the NAME of the environment variable holding the API key (never the key itself)",
    "timeout": "seconds per attempt",
    "response_schema": "whether the endpoint accepts a JSON schema in `response_format` (unset: litellm decides)",
    "temperature": "decoding default of the `llm`s that run via this model",
    "top_p": "decoding default of the `llm`s that run via this model",
    "max_tokens": "decoding default of the `llm`s that run via this model",
    "seed": "decoding default of the `llm`s that run via this model",
}


@frozen
class Symbol:
    """A name: its hover text (Markdown) and where it is declared."""

    hover: str | None
    target: Span | None


def entry(hover: str | None, target: Span | None) -> list:
    """A name as the index holds it, in its JSON form (`[hover, span]`): a document's
    index can hold tens of thousands of names, and the server decodes only the one asked."""
    return [hover, span_json(target)]


@frozen
class ModelScope:
    """A `model` declaration: inside it, after its name, an option name hovers as an option."""

    name: str
    span: Span
    name_end: tuple[int, int]  # (line, column just after the name)


@frozen
class Scope:
    """A workflow: its arguments and the names its statements bind (first binding wins)."""

    name: str
    span: Span
    symbols: dict[str, list]  # name -> `entry`


@frozen
class Index:
    source: str
    file: str
    decls: dict[str, list]  # name -> `entry`
    models: tuple[ModelScope, ...] = ()
    workflows: tuple[Scope, ...] = ()


def hover(index: Index, line: int, col: int) -> str | None:
    """Markdown for the name at 1-based (line, col), or None."""
    found = word_at(index.source, line, col)
    if found is None:
        return None
    word = found[0]
    if word in OPTION_HELP:
        for m in index.models:
            if inside(m.span, line, col) and (line, col) > m.name_end:
                var = f"PROMPTC_{m.name.upper()}_{word.upper()}"
                return code(f"{word}  (model option)") + f"\n\n{OPTION_HELP[word]}; overridden by `{var}`."
    symbol = _lookup(index, word, line, col)
    return symbol.hover if symbol is not None else None


def definition(index: Index, line: int, col: int) -> Span | None:
    """Where the name at 1-based (line, col) is declared, or None."""
    found = word_at(index.source, line, col)
    if found is None:
        return None
    symbol = _lookup(index, found[0], line, col)
    return symbol.target if symbol is not None else None


def _lookup(index: Index, word: str, line: int, col: int) -> Symbol | None:
    found = None
    for scope in index.workflows:
        if inside(scope.span, line, col):
            found = scope.symbols.get(word)
            break
    found = found or index.decls.get(word)
    return None if found is None else Symbol(found[0], span_from(found[1]))


# -- helpers shared with the analysis --------------------------------------------------------


def word_at(source: str, line: int, col: int) -> tuple[str, int, int] | None:
    """The identifier covering 1-based (line, col): (word, start col, end col exclusive)."""
    text = line_text(source, line)
    if text is None:
        return None
    for m in _WORD.finditer(text):
        if m.start() + 1 <= col <= m.end():
            return m.group(0), m.start() + 1, m.end() + 1
    return None


def line_text(source: str, line: int) -> str | None:
    """The 1-based `line` of `source` (lines split on `\\n` as the parser counts them), or None."""
    if line < 1:
        return None
    start = 0
    for _ in range(line - 1):
        start = source.find("\n", start) + 1
        if start == 0:
            return None
    end = source.find("\n", start)
    return (source[start:] if end < 0 else source[start:end]).rstrip("\r")


def inside(span: Span, line: int, col: int) -> bool:
    end_line = span.end_line or span.line
    if not span.line <= line <= end_line:
        return False
    if line == span.line and col < span.col:
        return False
    return not (line == end_line and span.end_col is not None and col > span.end_col)


def code(text: str) -> str:
    return f"```pflow\n{text}\n```"


# -- JSON (the worker's answer) -------------------------------------------------------------


def span_json(span: Span | None) -> list | None:
    return None if span is None else [span.file, span.line, span.col, span.end_line, span.end_col]


def span_from(data: Any) -> Span | None:
    return None if data is None else Span(str(data[0]), int(data[1]), int(data[2]), data[3], data[4])


def to_json(index: Index) -> dict:
    return {
        "source": index.source,
        "file": index.file,
        "decls": index.decls,
        "models": [[m.name, span_json(m.span), list(m.name_end)] for m in index.models],
        "workflows": [[w.name, span_json(w.span), w.symbols] for w in index.workflows],
    }


def from_json(data: dict) -> Index:
    return Index(
        source=data["source"],
        file=data["file"],
        decls=data["decls"],
        models=tuple(ModelScope(n, span_from(s), (e[0], e[1])) for n, s, e in data["models"]),
        workflows=tuple(Scope(n, span_from(s), syms) for n, s, syms in data["workflows"]),
    )
