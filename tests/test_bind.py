"""The function table (promptc.bind.bind_program): one search rule, one bind per program,
shared by resolve, typecheck, the interpreter and evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptc import bind
from promptc.bind import ArtifactRoot, bind_program, search_path
from promptc.compiler import compile_file
from promptc.errors import CompileError
from promptc.ir import Node
from promptc.runtime.evaluate import resolve_metric
from promptc.runtime.interpreter import ProgramError, bind_functions

# counts its own imports in a file next to it; `pad` has an optional argument, so the
# type checker needs the required arity of a call with one argument
TOOLS = (
    "from pathlib import Path\n"
    "_n = Path(__file__).with_name('imports.txt')\n"
    "_n.write_text(str(int(_n.read_text()) + 1) if _n.exists() else '1')\n"
    "def pad(s: str, width: int = 8) -> str:\n"
    '    """Pads s on the right."""\n'
    "    return s.ljust(width)\n"
    "def score(got, want) -> float:\n"
    "    return float(got.strip() == want)\n"
)
SRC = (
    'use "tools.py" { pad, score }\n'
    "workflow w(q: text) -> text { return pad(q) }\n"
    "train w { metric score }\n"
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "w.pflow").write_text(SRC)
    calls: list[tuple[str, str]] = []
    real = bind.load_callable

    def counting(module, attr, search_dirs=()):
        calls.append((module, attr))
        return real(module, attr, search_dirs)

    monkeypatch.setattr(bind, "load_callable", counting)
    return tmp_path, calls


def test_compiling_binds_each_function_once_and_typecheck_imports_nothing(project):
    tmp, calls = project
    program = compile_file(tmp / "w.pflow")
    assert sorted(calls) == [("tools.py", "pad"), ("tools.py", "score")]  # resolve, once each
    assert (tmp / "imports.txt").read_text() == "1"
    pad = program.function("pad")
    assert pad.doc == "Pads s on the right." and [n for n, _t in pad.params] == ["s", "width"]
    # the interpreter and the metric get the same table: nothing is imported again
    fns = bind_functions(program, (tmp,))
    assert fns["pad"]("ab", 4) == "ab  "
    assert resolve_metric(program, None, (tmp,))(" x ", "x") == 1.0
    assert len(calls) == 2 and (tmp / "imports.txt").read_text() == "1"


def test_typecheck_uses_the_bound_arity(project):
    tmp, _calls = project
    (tmp / "w.pflow").write_text(SRC.replace("pad(q)", "pad()"))
    with pytest.raises(CompileError, match=r"function 'pad' takes 2 argument\(s\), got 0"):
        compile_file(tmp / "w.pflow")


def test_a_function_that_does_not_bind_is_left_out_with_its_reason(tmp_path):
    (tmp_path / "w.pflow").write_text('use "nowhere.py" { f }\nworkflow w(q: text) -> text { return q }\n')
    with pytest.raises(CompileError, match="cannot find module file 'nowhere.py'") as info:
        compile_file(tmp_path / "w.pflow")
    assert info.value.span.line == 1
    program = compile_file(tmp_path / "w.pflow", until="inline")
    table = bind_program(program)
    assert "f" not in table and "cannot find module file" in table.errors["f"]
    assert bind_functions(program) == {}  # the workflow never calls it: not an error at run time
    called = compile_file(tmp_path / "w.pflow", until="inline")
    called = called.with_nodes(called.nodes + (Node(name="c", op="call", args=("q",), target="f"),))
    with pytest.raises(ProgramError, match="nowhere.py"):
        bind_functions(called)


def test_search_path_is_the_source_folder_then_the_given_dirs(tmp_path):
    here = tmp_path.resolve()
    src = str(here / "w.pflow")
    assert search_path(src, ["/x", str(here)]) == (here, Path("/x"))  # each folder once, first place kept
    assert search_path("<string>", ["/x", "/x"]) == (Path("/x"),)
    untrusted = ArtifactRoot(tmp_path, trusted=False)
    assert search_path(src, [untrusted]) == (untrusted,)  # an artifact's `file` is not a place to import from
    trusted = ArtifactRoot(tmp_path, trusted=True)
    assert search_path(src, [trusted]) == (here, trusted)
