"""Compiles run off the request loop (`promptc.lsp.pool`): hover and definition answer while
a slow document compiles, the next edit cancels a running compile, and a compile that
runs too long or a worker that dies is a diagnostic, not a stuck or dead server.

The slow document is a workflow of 40,000 `let`s (seconds to compile). The tests check
order (the hover answers before the slow diagnostics arrive), never durations; the
latency itself is measured by bench/lsp_latency.py."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is in the dev extra")
pytest.importorskip("pygls", reason="pygls is in the lsp extra")

from lsprotocol import types as T  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from promptc.lsp.pool import CompilePool  # noqa: E402

SMALL = 'llm f(q: text) -> text via m { user "{q}" }\nmodel m = "scripted/echo"\nworkflow w(q: text) -> text {\n  let a = f(q)\n  return a\n}\n'


def slow_document(n: int = 40_000) -> str:
    body = "\n".join(f'  let v{i} = q + "{i}"' for i in range(n))
    return f"workflow w(q: text) -> text {{\n{body}\n  return v{n - 1}\n}}\n"


LOG = Path(tempfile.mkdtemp(prefix="promptc-lsp-")) / "server.log"
SERVER = [sys.executable, "-c", "import sys; from promptc.cli import main; sys.exit(main(sys.argv[1:]))",
          "lsp", "--log", str(LOG)]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=T.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


def _open(client: LanguageClient, uri: str, text: str, version: int = 1) -> None:
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "pflow", version, text)))


async def _diagnostics_of(client: LanguageClient, uri: str, published: list) -> T.PublishDiagnosticsParams:
    while True:
        params = await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        published.append(params)
        if params.uri == uri:
            return params


@pytest.mark.asyncio
async def test_hover_answers_while_a_slow_document_compiles(client: LanguageClient, tmp_path):
    small, slow = (tmp_path / "small.pflow").as_uri(), (tmp_path / "slow.pflow").as_uri()
    published: list = []
    _open(client, small, SMALL)
    await _diagnostics_of(client, small, published)
    _open(client, slow, slow_document())
    await asyncio.sleep(0.2)  # the slow compile has started
    for _ in range(5):
        h = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(small), T.Position(3, 10)))
        assert "llm f(q: text) -> text via m" in h.contents.value
        loc = await client.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(small), T.Position(4, 9)))
        assert loc.range.start == T.Position(3, 6)
    assert slow not in client.diagnostics  # all of it answered before the slow compile ended


@pytest.mark.asyncio
async def test_the_next_edit_cancels_a_running_compile(client: LanguageClient, tmp_path):
    uri, warm = (tmp_path / "doc.pflow").as_uri(), (tmp_path / "warm.pflow").as_uri()
    published: list = []
    _open(client, warm, SMALL)
    await _diagnostics_of(client, warm, published)  # a worker is up
    _open(client, uri, slow_document())
    await asyncio.sleep(0.5)  # compiling version 1
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(version=2, uri=uri), [T.TextDocumentContentChangeWholeDocument(text=SMALL)]))
    params = await _diagnostics_of(client, uri, published)
    assert params.version == 2 and list(params.diagnostics) == []
    assert [p.version for p in published if p.uri == uri] == [2]  # version 1 was never published
    assert f"stopping the compile of {uri} (superseded)" in LOG.read_text()  # ... and its worker was stopped
    h = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), T.Position(3, 10)))
    assert "llm f" in h.contents.value


# -- the pool alone ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_compile_over_the_time_limit_is_stopped_with_a_warning(tmp_path):
    pool = CompilePool(timeout=1.0)
    try:
        answer = await pool.compile("a", slow_document(), str(tmp_path / "a.pflow"))
        ((severity, message, span),) = answer["diagnostics"]
        assert severity == "warning" and "compiling stopped after 1 s" in message and answer["index"] is None
        answer = await pool.compile("b", SMALL, str(tmp_path / "b.pflow"))  # a fresh worker answers
        assert answer["diagnostics"] == [] and "w" in answer["index"]["decls"]
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_a_worker_that_dies_is_an_error_and_the_next_compile_works(tmp_path):
    pool = CompilePool()
    try:
        job = asyncio.ensure_future(pool.compile("a", slow_document(), str(tmp_path / "a.pflow")))
        while "a" not in pool._running:
            await asyncio.sleep(0.05)
        pool._running["a"].proc.kill()  # as the kernel's OOM killer would
        ((severity, message, _),) = (await job)["diagnostics"]
        assert severity == "error" and "the compiler stopped" in message
        assert (await pool.compile("b", SMALL, str(tmp_path / "b.pflow")))["diagnostics"] == []
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_superseded_compiles_answer_none_and_only_the_last_runs(tmp_path):
    pool = CompilePool(size=1)
    try:
        jobs = [asyncio.ensure_future(pool.compile("a", slow_document(2000) if i < 4 else SMALL, str(tmp_path / "a.pflow")))
                for i in range(5)]
        answers = await asyncio.gather(*jobs)
        assert answers[:4] == [None] * 4 and answers[4]["diagnostics"] == []
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_any_text_travels_to_the_worker_and_back(tmp_path):
    pool = CompilePool()
    try:
        text = SMALL.replace('"{q}"', '"{q} \udfff é 𝄞"')
        ((severity, message, span),) = (await pool.compile("a", text, str(tmp_path / "a.pflow")))["diagnostics"]
        assert severity == "error" and "lone surrogate" in message and span[1:3] == [1, 42]
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_workers_that_cannot_start_are_an_error_not_a_hang(tmp_path):
    pool = CompilePool(command=[sys.executable, "-c", "raise SystemExit(3)"])
    try:
        ((severity, message, _),) = (await pool.compile("a", SMALL, str(tmp_path / "a.pflow")))["diagnostics"]
        assert severity == "error" and "the compiler cannot start" in message
    finally:
        await pool.close()
