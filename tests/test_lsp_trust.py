"""Workspace trust in `promptc lsp`: opening a document never imports or runs its Python
unless the server is trusted (`--trust`, or the initialization option `{"trust": true}`)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is in the dev extra")
pytest.importorskip("pygls", reason="pygls is in the lsp extra")

from lsprotocol import types as T  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from promptc.lsp.analysis import analyze, build_index  # noqa: E402
from promptc.lsp.index import definition, hover  # noqa: E402

SERVER = [sys.executable, "-c", "import sys; from promptc.cli import main; sys.exit(main(sys.argv[1:]))", "lsp"]

TOOLS = '''\
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("tools.py was imported")
print("tools.py prints at import")  # trusted, this runs in the worker: it must not reach the protocol

import promptc

def shout(text: str, times: int = 1) -> str:
    """Upper-case the text."""
    return text.upper() * times

@promptc.workflow
def echo(q: str) -> str:
    return q
'''

DOC = '''\
use "tools.py" { shout, echo }

workflow w(q: text) -> text {
  let loud = shout(q)
  return echo(loud)
}
'''


def _workspace(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "tools.py").write_text(TOOLS)
    doc = tmp_path / "doc.pflow"
    doc.write_text(DOC)
    return doc, DOC


def _pos(text: str, needle: str, offset: int = 1) -> T.Position:
    at = text.index(needle)
    return T.Position(text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1) + offset)


async def _open(client: LanguageClient, path: Path, text: str) -> list[T.Diagnostic]:
    uri = path.as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "pflow", 1, text)))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def untrusted(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=T.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def trusted_by_option(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        T.InitializeParams(capabilities=T.ClientCapabilities(), initialization_options={"trust": True})
    )
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[*SERVER, "--trust"]))
async def trusted_by_flag(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=T.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_an_untrusted_workspace_runs_nothing_and_says_what_it_did_not_check(untrusted: LanguageClient, tmp_path):
    doc, text = _workspace(tmp_path)
    (diag,) = await _open(untrusted, doc, text)
    assert not (tmp_path / "RAN").exists()
    assert diag.severity == T.DiagnosticSeverity.Information
    assert "'echo' is a @promptc.workflow" in diag.message and '{"trust": true}' in diag.message
    assert diag.range.start == _pos(text, "echo", 0)
    # the plain function is typed from its source: signature and docstring on hover
    h = await untrusted.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(doc.as_uri()), _pos(text, "shout(q")))
    assert "shout(text: text, times: int) -> text" in h.contents.value and "Upper-case the text." in h.contents.value
    loc = await untrusted.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(doc.as_uri()), _pos(text, "shout(q")))
    def_line = next(i for i, ln in enumerate(TOOLS.splitlines()) if ln.startswith("def shout"))
    assert loc.uri.endswith("/tools.py") and loc.range.start == T.Position(def_line, 4)
    # a type error against the source-read signature is still found
    bad = text.replace("shout(q)", "shout(q, q)")
    uri = doc.as_uri()
    untrusted.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(version=2, uri=uri), [T.TextDocumentContentChangeWholeDocument(text=bad)]))
    await untrusted.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    errors = [d for d in untrusted.diagnostics[uri] if d.severity == T.DiagnosticSeverity.Error]
    assert errors and not (tmp_path / "RAN").exists()


async def _check_trusted(client: LanguageClient, tmp_path: Path) -> None:
    doc, text = _workspace(tmp_path)
    assert await _open(client, doc, text) == []  # the decorated workflow is inlined and checked
    assert (tmp_path / "RAN").read_text() == "tools.py was imported"


@pytest.mark.asyncio
async def test_the_initialization_option_lifts_it(trusted_by_option: LanguageClient, tmp_path):
    await _check_trusted(trusted_by_option, tmp_path)


@pytest.mark.asyncio
async def test_the_trust_flag_lifts_it(trusted_by_flag: LanguageClient, tmp_path):
    await _check_trusted(trusted_by_flag, tmp_path)


def test_the_worker_refuses_to_run_user_files_even_if_asked(tmp_path):
    """The second lock: the untrusted worker's audit hook stops any import of a user file."""
    import subprocess

    (tmp_path / "evil.py").write_text("import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n")
    code = textwrap.dedent(f"""
        from promptc.lsp.worker import refuse_user_code
        from promptc.bind import load_module, BindError
        refuse_user_code()
        import promptc.stdlib.text  # promptc's own code still runs
        try:
            load_module("evil.py", [{str(tmp_path)!r}])
        except BindError as e:
            print("refused:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in out.stdout and "the workspace is not trusted" in out.stdout, out.stderr
    assert not (tmp_path / "RAN").exists()


def test_analysis_without_a_client(tmp_path):
    doc, text = _workspace(tmp_path)
    a = analyze(text, str(doc))
    assert a.error is None and not (tmp_path / "RAN").exists()
    assert [d.severity for d in a.diagnostics()] == ["information"]
    index = build_index(a)
    at = text.index("loud)")
    line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    assert "loud: text" in hover(index, line, col) and "let in workflow `w`" in hover(index, line, col)
    assert definition(index, line, col).line == 4


def test_a_name_bound_other_than_by_def_is_a_note_not_an_error(tmp_path):
    (tmp_path / "tools.py").write_text("from os.path import join as helper\n\ndef f(x: str) -> str:\n    return x\n")
    text = 'use "tools.py" { helper, f }\n\nworkflow w(q: text) -> text {\n  return f(helper(q))\n}\n'
    a = analyze(text, str(tmp_path / "d.pflow"))
    (note,) = a.diagnostics()
    assert note.severity == "information" and "'helper' is not a `def` of tools.py" in note.message
    assert (note.span.line, note.span.col) == (1, 18)
    trusted = analyze(text, str(tmp_path / "d.pflow"), trust=True)
    assert trusted.diagnostics() == [] and trusted.program is not None


def test_hover_says_why_an_annotation_reads_as_json(tmp_path):
    (tmp_path / "tools.py").write_text("from typing import Optional\n\ndef f(x: Optional[str]) -> str:\n    return x or ''\n")
    text = 'use "tools.py" { f }\n\nworkflow w(q: text) -> text {\n  return f(q)\n}\n'
    a = analyze(text, str(tmp_path / "d.pflow"))
    assert a.diagnostics() == []
    shown = hover(build_index(a), 4, 10)
    assert "f(x: json) -> text" in shown and "parameter 'x': an Optional is json" in shown
