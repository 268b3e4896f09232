"""`serve()`: the analysis, the compile workers and the framing wired to pygls.

The request loop never compiles: `didOpen`/`didChange` hand the document to the
`CompilePool` (a worker process; the next edit of the same document cancels it; a change
waits `EDIT_DELAY` for the next keystroke first, so typing does not restart workers) and
publish its diagnostics when it answers; hover and definition answer from the last
`Index` of the document at once. The stream is read by `promptc.lsp.framing` instead of
pygls' reader, so malformed or absurd headers are logged and skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from promptc.errors import Span
from promptc.lsp.framing import run_stream
from promptc.lsp.index import Index, definition, from_json, hover, line_text, span_from
from promptc.lsp.pool import CompilePool

log = logging.getLogger(__name__)

_SEVERITY = {"error": 1, "warning": 2, "information": 3, "hint": 4}
EDIT_DELAY = 0.1  # seconds a change waits for the next keystroke before it is compiled


def serve(*, trust: bool = False, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:  # pragma: no cover - run through a real client in tests/test_lsp*.py
    """Run the language server on stdin/stdout until the client exits.

    `trust` (`promptc lsp --trust`) lets the compiler import the Python a document uses;
    otherwise the initialization option `{"trust": true}` does."""
    from pygls.io_ import StdoutWriter

    server, state = _build(trust)
    stdin = stdin or sys.stdin.buffer
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

    def on_message(body: bytes) -> None:
        try:
            message = json.loads(body, object_hook=server.protocol.structure_message)
        except Exception as e:  # framed JSON, but not a message pygls can read
            _problem(server, f"a message that is not a JSON-RPC message: {type(e).__name__}: {e}")
            return
        try:
            server.protocol.handle_message(message)
        except Exception:
            log.exception("handling a message failed")

    async def main() -> None:
        try:
            await run_stream(stdin.fileno(), on_message, lambda text: _problem(server, text, logged=True))
        finally:
            await state.close()

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the connection to the client is lost: stopping")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def _problem(server: Any, text: str, *, logged: bool = False) -> None:
    """A broken message: logged, and told to the client's log (it may be listening)."""
    from lsprotocol import types as T

    if not logged:
        log.error("protocol stream: %s", text)
    try:
        server.window_log_message(T.LogMessageParams(type=T.MessageType.Error, message=f"promptc lsp: {text}"))
    except Exception:  # the client is gone or not initialized: the log has it
        log.debug("could not tell the client", exc_info=True)


class _State:
    def __init__(self, trust: bool):
        self.trust = trust
        self.pool: CompilePool | None = None
        self.indexes: dict[str, Index] = {}

    def compiler(self) -> CompilePool:
        if self.pool is None:
            self.pool = CompilePool(trust=self.trust)
            self.pool.start()
        return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


def _build(trust: bool) -> tuple[Any, _State]:
    from lsprotocol import types as T
    from pygls.lsp.server import LanguageServer

    from promptc import __version__

    server = LanguageServer("promptc", __version__)
    state = _State(trust)

    @server.feature(T.INITIALIZE)
    def on_initialize(ls: LanguageServer, params: T.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and options.get("trust") is True:
            state.trust = True
        log.info("workspace %s", "trusted: documents' Python is imported" if state.trust else "untrusted: no user code runs")
        state.compiler()

    async def refresh(uri: str, delay: float = 0.0) -> None:
        doc = server.workspace.get_text_document(uri)
        version, source = doc.version, doc.source
        answer = await state.compiler().compile(uri, source, uri_to_path(uri), delay=delay)
        if answer is None or uri not in server.workspace.text_documents:
            return  # superseded by a newer version, or closed
        if answer.get("crash"):
            answer = {"diagnostics": [["error", f"internal compiler error: {answer['crash']}", None]], "index": None}
        if answer.get("index") is not None:
            state.indexes[uri] = from_json(answer["index"])
        diags = [_diagnostic(source, uri_to_path(uri), *d) for d in answer["diagnostics"]]
        server.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=version))

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: LanguageServer, params: T.DidOpenTextDocumentParams) -> None:
        await refresh(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: LanguageServer, params: T.DidChangeTextDocumentParams) -> None:
        await refresh(params.text_document.uri, delay=EDIT_DELAY)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: T.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        state.indexes.pop(uri, None)
        if state.pool is not None:
            state.pool.cancel(uri)
        server.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def position(uri: str, pos: Any) -> tuple[Index | None, int, int]:
        index = state.indexes.get(uri)
        if index is None:
            return None, 0, 0
        text = line_text(index.source, pos.line + 1) or ""
        return index, pos.line + 1, _chars(text, pos.character)

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: LanguageServer, params: T.HoverParams) -> T.Hover | None:
        index, line, col = position(params.text_document.uri, params.position)
        text = hover(index, line, col) if index is not None else None
        if text is None:
            return None
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: LanguageServer, params: T.DefinitionParams) -> T.Location | None:
        index, line, col = position(params.text_document.uri, params.position)
        span = definition(index, line, col) if index is not None else None
        if span is None:
            return None
        if span.file == index.file:
            return T.Location(uri=params.text_document.uri, range=lsp_range(index.source, span))
        try:
            source = Path(span.file).read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            return None
        return T.Location(uri=path_to_uri(span.file), range=lsp_range(source, span))

    return server, state


def _diagnostic(source: str, file: str, severity: str, message: str, span_data: Any) -> Any:
    from lsprotocol import types as T

    span = span_from(span_data) or Span(file, 1, 1)
    if span.file in (file, "<string>"):
        rng = lsp_range(source, span)
    else:  # the error is in another file (a `use`d one): report it at the top
        rng = T.Range(T.Position(0, 0), T.Position(0, 1))
        message = f"{span}: {message}"
    return T.Diagnostic(range=rng, message=message, severity=T.DiagnosticSeverity(_SEVERITY[severity]), source="promptc")


# -- positions and URIs --------------------------------------------------------------------


def lsp_range(source: str, span: Span) -> Any:
    """A promptc span (1-based lines and characters) as an LSP range (0-based, UTF-16)."""
    from lsprotocol import types as T

    last = source.count("\n") + 1
    line = min(max(span.line, 1), last)
    end_line = min(max(span.end_line or span.line, line), last)
    first_text, end_text = line_text(source, line) or "", line_text(source, end_line) or ""
    start = _utf16(first_text, span.col)
    end_col = span.end_col if span.end_col is not None and (span.end_line or span.line) == end_line else None
    end = _utf16(end_text, end_col) if end_col else max(start + 1, _utf16(end_text, span.col + 1))
    if end_line == line and end <= start:
        end = start + 1
    return T.Range(T.Position(line - 1, start), T.Position(end_line - 1, end))


def _utf16(line_text: str, col: int) -> int:
    """1-based character column -> 0-based UTF-16 offset."""
    return len(line_text[: max(col - 1, 0)].encode("utf-16-le", "surrogatepass")) // 2


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
