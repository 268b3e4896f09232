"""`promptc lsp`: a language server for `.pflow` files (Language Server Protocol over stdio).

What it does, with the compiler's own code (nothing here re-implements the language):
- diagnostics as you type: each open document is compiled (parse, lower, every pass) on
  open and on every change, and the first `CompileError` is published at its span;
- hover: a local variable's type, a param's kind and role, a model's string and options,
  an `llm`'s or workflow's signature, an imported function's signature and docstring;
- go to definition: the declaration of a model, param, llm, workflow or imported name
  (an imported function goes to its `def` in the Python file, found by reading that file,
  never by importing it), and the `let` / `for` / argument that binds a local variable.

The analysis (`analyze`, `hover`, `definition`) is plain functions over the source text,
tested without a client; `serve()` wires them to pygls (the `lsp` extra). Positions:
promptc spans are 1-based lines and characters; LSP positions are 0-based lines and UTF-16
code units, converted here (`_utf16`, `_chars`).
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

import attrs
from attrs import frozen

from promptc.errors import CompileError, Span
from promptc.frontend import ast as A

log = logging.getLogger(__name__)

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
class Analysis:
    """One version of a document: its AST (None if it does not parse), its compiled
    Program (None if it does not compile) and the error that stopped the compiler."""

    source: str
    file: str
    module: A.Module | None
    program: Any
    error: CompileError | None


def analyze(source: str, file: str) -> Analysis:
    """Parse and compile `source` (named `file`, which resolves `use "x.py"`)."""
    from promptc.compiler import compile_source
    from promptc.frontend.parser import parse

    module = program = error = None
    try:
        module = parse(source, file)
        program = compile_source(source, file)
    except CompileError as e:
        error = e
    except Exception as e:  # a compiler bug must not take the editor's server down
        log.exception("compiling %s failed", file)
        error = CompileError(f"internal compiler error: {type(e).__name__}: {e}", Span(file, 1, 1))
    return Analysis(source, file, module, program, error)


# --- hover ----------------------------------------------------------------------------------


def hover(a: Analysis, line: int, col: int) -> str | None:
    """Markdown for the name at 1-based (line, col), or None."""
    found = word_at(a.source, line, col)
    if found is None or a.module is None:
        return None
    word = found[0]
    model = next((m for m in a.module.items if isinstance(m, A.ModelDecl) and _inside(m.span, line, col)), None)
    if model is not None and word in OPTION_HELP and model.name_span and (line, col) > (
        model.name_span.line, model.name_span.end_col or 0
    ):
        var = f"PROMPTC_{model.name.upper()}_{word.upper()}"
        return _code(f"{word}  (model option)") + f"\n\n{OPTION_HELP[word]}; overridden by `{var}`."
    local = _local(a, word, line, col)
    if local is not None:
        kind, span, declared = local
        typ = declared or _value_type(a, word)
        return _code(f"{word}: {typ}" if typ else word) + f"\n\n{kind} in workflow `{_workflow_at(a, line, col).name}`"
    decl = _declaration(a.module, word)
    if decl is None:
        return None
    if isinstance(decl, A.ModelDecl):
        src = f'env("{decl.env}", "{decl.default}")' if decl.env else f'"{decl.default}"'
        text = _code(f"model {decl.name} = {src}")
        if decl.options:
            text += "\n\n" + "\n".join(f"- `{k}` {v!r}" for k, v in decl.options)
        return text + f"\n\nEach option can be overridden by `PROMPTC_{decl.name.upper()}_<OPTION>`."
    if isinstance(decl, A.ParamDecl):
        kind = "prompt" if decl.kind == "prompt" else f"demos(max = {decl.max_demos})"
        text = _code(f"param {decl.name}: {kind}" + (" trainable" if decl.trainable else ""))
        if decl.role:
            text += f"\n\nrole: {decl.role}"
        if decl.kind == "prompt" and decl.text:
            text += "\n\n" + _quote(decl.text)
        return text
    if isinstance(decl, A.LlmDecl):
        args = ", ".join(f"{p.name}: {p.type}" for p in decl.params)
        return _code(f"llm {decl.name}({args}) -> {decl.returns} via {decl.model}")
    if isinstance(decl, A.WorkflowDecl):
        args = ", ".join(f"{p.name}: {p.type}" for p in decl.params)
        return _code(f"workflow {decl.name}({args}) -> {decl.returns}")
    if isinstance(decl, tuple):  # (Use, ImportName)
        use, item = decl
        fn = _function(a, item.local)
        if fn is None:
            return _code(f"use {_module_text(use.module)} {{ {item.attr} }}")
        args = ", ".join(f"{n}: {t}" for n, t in fn.params)
        text = _code(f"{fn.name}({args}) -> {fn.returns}") + f"\n\nfrom `{use.module}`"
        return text + (f"\n\n{fn.doc.strip()}" if fn.doc else "")
    return None


# --- definition ----------------------------------------------------------------------------


def definition(a: Analysis, line: int, col: int) -> Span | None:
    """Where the name at 1-based (line, col) is declared, or None."""
    found = word_at(a.source, line, col)
    if found is None or a.module is None:
        return None
    word = found[0]
    local = _local(a, word, line, col)
    if local is not None:
        return local[1]
    decl = _declaration(a.module, word)
    if decl is None:
        return None
    if isinstance(decl, tuple):
        use, item = decl
        return _python_def(use.module, item.attr, a.file) or item.span
    return decl.name_span or decl.span


# --- helpers --------------------------------------------------------------------------------


def word_at(source: str, line: int, col: int) -> tuple[str, int, int] | None:
    """The identifier covering 1-based (line, col): (word, start col, end col exclusive)."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    for m in _WORD.finditer(text):
        if m.start() + 1 <= col <= m.end():
            return m.group(0), m.start() + 1, m.end() + 1
    return None


def _declaration(module: A.Module, name: str) -> Any:
    for item in module.items:
        if isinstance(item, A.Use):
            for imp in item.names:
                if imp.local == name:
                    return (item, imp)
        elif getattr(item, "name", None) == name and not isinstance(item, A.TrainDecl):
            return item
    return None


def _workflow_at(a: Analysis, line: int, col: int) -> A.WorkflowDecl | None:
    for item in a.module.items if a.module else ():
        if isinstance(item, A.WorkflowDecl) and _inside(item.span, line, col):
            return item
    return None


def _local(a: Analysis, word: str, line: int, col: int) -> tuple[str, Span, Any] | None:
    """(what binds it, where, declared type or None) for a local name of the enclosing workflow."""
    wf = _workflow_at(a, line, col)
    if wf is None:
        return None
    for p in wf.params:
        if p.name == word:
            return "argument", p.span, p.type
    for kind, name, span in _bindings(wf.body):
        if name == word:
            return kind, span, None
    return None


def _bindings(body: Any) -> Iterator[tuple[str, str, Span]]:
    """Every name a statement list binds, in source order (any statement kind: the walk is
    generic over the AST's attrs records, so new statements with bodies are covered)."""
    for stmt in body:
        if isinstance(stmt, A.Let):
            yield "let", stmt.name, stmt.name_span
        elif isinstance(stmt, A.For):
            yield "loop variable", stmt.var, stmt.var_span
        if attrs.has(type(stmt)):
            for f in attrs.fields(type(stmt)):
                value = getattr(stmt, f.name)
                if isinstance(value, tuple) and value and attrs.has(type(value[0])):
                    yield from _bindings(value)


def _value_type(a: Analysis, word: str) -> str | None:
    """The type the compiler gave the variable (its SSA values `word`, `word.2`, `word@loop#0`)."""
    if a.program is None:
        return None
    for node in a.program.workflow.nodes:
        base = re.split(r"[.@]", node.name, maxsplit=1)[0]
        if base == word and node.type is not None:
            return str(node.type)
    return None


def _function(a: Analysis, name: str) -> Any:
    if a.program is None:
        return None
    for fn in a.program.functions:
        if fn.name == name:
            return fn
    return None


def _python_def(module: str, attr: str, file: str) -> Span | None:
    """The `def attr` line of the Python file behind `use MODULE`, found by reading it."""
    if module.startswith("std."):
        try:
            path = Path(str(resources.files("promptc.stdlib").joinpath(module[4:] + ".py")))
        except (ModuleNotFoundError, ValueError):
            return None
    else:
        path = Path(file).parent / module
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(rf"^(?:async\s+)?def\s+({re.escape(attr)})\b", text, re.MULTILINE)
    if m is None:
        return None
    line = text.count("\n", 0, m.start()) + 1
    col = m.start(1) - (text.rfind("\n", 0, m.start(1)) + 1) + 1
    return Span(str(path), line, col, line, col + len(attr))


def _inside(span: Span, line: int, col: int) -> bool:
    end_line = span.end_line or span.line
    if not span.line <= line <= end_line:
        return False
    if line == span.line and col < span.col:
        return False
    return not (line == end_line and span.end_col is not None and col > span.end_col)


def _module_text(module: str) -> str:
    return module if module.startswith("std.") else f'"{module}"'


def _code(text: str) -> str:
    return f"```pflow\n{text}\n```"


def _quote(text: str, limit: int = 400) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + "…"
    return "\n".join("> " + ln for ln in text.splitlines())


# --- positions and URIs --------------------------------------------------------------------


def _utf16(line_text: str, col: int) -> int:
    """1-based character column -> 0-based UTF-16 offset."""
    return len(line_text[: max(col - 1, 0)].encode("utf-16-le")) // 2


def _chars(line_text: str, units: int) -> int:
    """0-based UTF-16 offset -> 1-based character column."""
    count = 0
    for i, ch in enumerate(line_text):
        if count >= units:
            return i + 1
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(line_text) + 1


def uri_to_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def path_to_uri(path: str) -> str:
    return Path(path).resolve().as_uri() if not path.startswith(("<", "file:")) else path


# --- the server (pygls) ---------------------------------------------------------------------


def serve() -> None:  # pragma: no cover - exercised through a real client in tests/test_lsp.py
    """Run the language server on stdin/stdout until the client exits."""
    from lsprotocol import types as T
    from pygls.lsp.server import LanguageServer

    from promptc import __version__

    server = LanguageServer("promptc", __version__)
    documents: dict[str, Analysis] = {}

    def lsp_range(source: str, span: Span) -> Any:
        lines = source.splitlines() or [""]
        line = min(max(span.line, 1), len(lines))
        end_line = min(max(span.end_line or span.line, line), len(lines))
        start = _utf16(lines[line - 1], span.col)
        end_col = span.end_col if span.end_col is not None and (span.end_line or span.line) == end_line else None
        end = _utf16(lines[end_line - 1], end_col) if end_col else max(start + 1, _utf16(lines[end_line - 1], span.col + 1))
        if end_line == line and end <= start:
            end = start + 1
        return T.Range(T.Position(line - 1, start), T.Position(end_line - 1, end))

    def refresh(uri: str) -> None:
        doc = server.workspace.get_text_document(uri)
        a = analyze(doc.source, uri_to_path(uri))
        documents[uri] = a
        diags = []
        if a.error is not None:
            span = a.error.span or Span(a.file, 1, 1)
            if span.file in (a.file, "<string>"):
                rng = lsp_range(a.source, span)
                message = a.error.message
            else:  # the error is in another file (a `use`d one): report it at the top
                rng = T.Range(T.Position(0, 0), T.Position(0, 1))
                message = f"{span}: {a.error.message}"
            diags.append(T.Diagnostic(range=rng, message=message, severity=T.DiagnosticSeverity.Error, source="promptc"))
        server.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=doc.version))

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LanguageServer, params: T.DidOpenTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LanguageServer, params: T.DidChangeTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: T.DidCloseTextDocumentParams) -> None:
        documents.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    def position(uri: str, pos: Any) -> tuple[Analysis | None, int, int]:
        a = documents.get(uri)
        if a is None:
            return None, 0, 0
        lines = a.source.splitlines()
        text = lines[pos.line] if pos.line < len(lines) else ""
        return a, pos.line + 1, _chars(text, pos.character)

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: LanguageServer, params: T.HoverParams) -> T.Hover | None:
        a, line, col = position(params.text_document.uri, params.position)
        text = hover(a, line, col) if a is not None else None
        if text is None:
            return None
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: LanguageServer, params: T.DefinitionParams) -> T.Location | None:
        a, line, col = position(params.text_document.uri, params.position)
        span = definition(a, line, col) if a is not None else None
        if span is None:
            return None
        if span.file == a.file:
            return T.Location(uri=params.text_document.uri, range=lsp_range(a.source, span))
        try:
            source = Path(span.file).read_text(encoding="utf-8")
        except OSError:
            return None
        return T.Location(uri=path_to_uri(span.file), range=lsp_range(source, span))

    server.start_io()
