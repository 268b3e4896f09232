"""`promptc lsp` driven by a real LSP client (pytest-lsp): diagnostics as you type, hover,
go to definition, over stdio exactly as an editor talks to it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is in the dev extra")
pytest.importorskip("pygls", reason="pygls is in the lsp extra")

from lsprotocol import types as T  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MULTIHOP = ROOT / "examples" / "multihop" / "multihop.pflow"
SERVER = [sys.executable, "-c", "import sys; from promptc.cli import main; sys.exit(main(['lsp']))"]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=T.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


def _pos(text: str, needle: str, nth: int = 0, offset: int = 0) -> T.Position:
    """The LSP position of the `nth` occurrence of `needle` (plus `offset` characters)."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at)
    return T.Position(line, at - (text.rfind("\n", 0, at) + 1) + offset)


async def _open(client: LanguageClient, uri: str, text: str) -> list[T.Diagnostic]:
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "pflow", 1, text)))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


@pytest.mark.asyncio
async def test_diagnostics_follow_the_edits(client: LanguageClient):
    text = MULTIHOP.read_text()
    uri = MULTIHOP.as_uri()
    assert await _open(client, uri, text) == []
    bad = text.replace("make_query(question, notes)", "make_query(questoin, notes)")
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [T.TextDocumentContentChangeWholeDocument(text=bad)],
    ))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    (diag,) = client.diagnostics[uri]
    assert diag.message == "unknown name 'questoin' (did you mean 'question'?)"
    assert diag.severity == T.DiagnosticSeverity.Error and diag.source == "promptc"
    start = _pos(bad, "questoin")
    assert diag.range == T.Range(start, T.Position(start.line, start.character + len("questoin")))
    # fixed again: the diagnostic goes away
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(version=3, uri=uri), [T.TextDocumentContentChangeWholeDocument(text=text)],
    ))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[uri]) == []


@pytest.mark.asyncio
async def test_syntax_and_model_option_errors_are_located(client: LanguageClient, tmp_path):
    uri = (tmp_path / "m.pflow").as_uri()
    text = 'model m = "openai/x" { timeout "soon" }\nllm f(q: text) -> text via m { user "{q}" }\nworkflow w(q: text) -> text { return f(q) }\n'
    (diag,) = await _open(client, uri, text)
    assert "model option 'timeout' needs a number" in diag.message
    assert diag.range.start == _pos(text, '"soon"')
    # fixed: no diagnostic, and the option explains itself on hover
    good = text.replace('"soon"', "5")
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(version=2, uri=uri), [T.TextDocumentContentChangeWholeDocument(text=good)],
    ))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[uri]) == []
    h = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), _pos(good, "timeout", 0, 2)))
    assert "seconds per attempt" in h.contents.value and "PROMPTC_M_TIMEOUT" in h.contents.value


@pytest.mark.asyncio
async def test_hover_types_roles_signatures_and_docstrings(client: LanguageClient):
    text = MULTIHOP.read_text()
    uri = MULTIHOP.as_uri()
    await _open(client, uri, text)

    async def hover(needle: str, nth: int = 0) -> str:
        h = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), _pos(text, needle, nth, 1)))
        assert h is not None, needle
        return h.contents.value

    assert "corpus: list[text]" in await hover("corpus", 1)  # a local: the type the compiler inferred
    assert "role: how to answer from the notes" in await hover("answer_instruction")  # a param: its role
    doc = await hover("retrieve(")  # an imported function: signature and docstring
    assert "retrieve(query: text, corpus: list[text], k: int) -> list[text]" in doc and "BM25" in doc
    assert "llm make_query(question: text, notes: text) -> text via task" in await hover("make_query(question")


@pytest.mark.asyncio
async def test_go_to_definition(client: LanguageClient):
    text = MULTIHOP.read_text()
    uri = MULTIHOP.as_uri()
    await _open(client, uri, text)

    async def goto(needle: str, nth: int = 0) -> T.Location:
        loc = await client.text_document_definition_async(
            T.DefinitionParams(T.TextDocumentIdentifier(uri), _pos(text, needle, nth, 1))
        )
        assert isinstance(loc, T.Location), (needle, loc)
        return loc

    loc = await goto("make_query(question")  # an llm -> its declaration's name
    assert loc.uri == uri and loc.range.start == _pos(text, "make_query")
    loc = await goto("corpus", 1)  # a local -> the `let` that binds it
    assert loc.range.start == _pos(text, "corpus")
    loc = await goto("retrieve(")  # a std function -> its `def` in the Python file
    assert loc.uri.endswith("/retrieval.py")
    lines = Path(loc.uri.removeprefix("file://")).read_text().splitlines()
    assert lines[loc.range.start.line].lstrip().startswith("def retrieve(")


def test_an_imported_workflow_hovers_and_goes_to_its_declaration(tmp_path):
    from promptc.lsp.analysis import analyze, build_index
    from promptc.lsp.index import definition, hover

    (tmp_path / "other.pflow").write_text(
        'model m = "scripted/echo"\nllm g(q: text) -> text via m { user "{q}" }\n'
        "workflow inner(q: text, n: int) -> text {\n  return g(q)\n}\n"
    )
    text = 'use "other.pflow" { inner }\n\nworkflow w(q: text) -> text {\n  return inner(q, 3)\n}\n'
    a = analyze(text, str(tmp_path / "main.pflow"))
    assert a.error is None and a.notes == ()
    index = build_index(a)
    assert "workflow inner(q: text, n: int) -> text" in hover(index, 4, 10)
    span = definition(index, 4, 10)
    assert (Path(span.file).name, span.line, span.col) == ("other.pflow", 3, 10)
