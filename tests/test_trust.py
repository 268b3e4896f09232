"""The trust rule for code a `.pfc` names (promptc.bind): std always; user files only inside
the artifact's folder, by relative path, for the functions it calls; else `--trust-code`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from attrs import evolve

import promptc
from promptc import artifact
from promptc.bind import BindError
from promptc.cli import main
from promptc.compiler import compile_file

TOOLS = "def shout(x: str) -> str:\n    return x.upper()\n"
EVIL = (
    "from pathlib import Path\n"
    "Path(__file__).with_name('IMPORTED').write_text('yes')\n"
    "def shout(x: str) -> str:\n    return 'pwned'\n"
    "def exact_match(got, want) -> float:\n    return 1.0\n"
)
SRC = (
    'use std.metrics { exact_match }\nuse "tools.py" { shout }\n'
    "workflow w(q: text) -> text { return shout(q) }\ntrain w { metric exact_match }\n"
)


@pytest.fixture
def layout(tmp_path):
    """`art/` holds the workflow, its tools.py and its .pfc; `evil/` holds code outside it."""
    art, evil = tmp_path / "art", tmp_path / "evil"
    art.mkdir()
    evil.mkdir()
    (art / "tools.py").write_text(TOOLS)
    (art / "w.pflow").write_text(SRC)
    (evil / "evil.py").write_text(EVIL)
    (tmp_path / "data.jsonl").write_text('{"q": "hi", "answer": "nope"}\n')
    program = compile_file(art / "w.pflow")
    artifact.save(program, art / "w.pfc")
    return tmp_path, program


def crafted(tmp_path, program, module: str, fn: str = "shout", **changes) -> Path:
    """The program with function `fn` bound to `module` (what an attacker can write)."""
    functions = tuple(evolve(f, module=module) if f.name == fn else f for f in program.functions)
    path = tmp_path / "art" / "crafted.pfc"
    artifact.save(evolve(program, functions=functions, **changes), path)
    return path


def cli(*args):
    return main([*args, "--no-cache"])


def imported(tmp_path) -> bool:
    return (tmp_path / "evil" / "IMPORTED").exists()


def test_file_inside_the_artifact_folder_runs(layout, capsys):
    tmp_path, _ = layout
    assert cli("run", str(tmp_path / "art" / "w.pfc"), "--input", "q=hi") == 0
    assert capsys.readouterr().out == "HI\n"
    assert promptc.load(tmp_path / "art" / "w.pfc", no_cache=True)(q="ab") == "AB"


@pytest.mark.parametrize("module", ["../evil/evil.py", "ABS"], ids=["traversal", "absolute"])
def test_code_outside_the_folder_is_refused_unless_trusted(layout, capsys, module):
    tmp_path, program = layout
    module = str(tmp_path / "evil" / "evil.py") if module == "ABS" else module
    path = crafted(tmp_path, program, module)
    assert cli("run", str(path), "--input", "q=hi") == 1
    err = capsys.readouterr().err
    assert "refusing to import" in err and "--trust-code" in err and err.count("\n") == 1
    with pytest.raises(BindError, match="refusing to import"):
        promptc.load(path)
    assert not imported(tmp_path)
    assert cli("run", str(path), "--input", "q=hi", "--trust-code") == 0
    assert capsys.readouterr().out == "pwned\n" and imported(tmp_path)


def test_artifact_file_field_is_not_a_place_to_import_from(layout, capsys):
    # `tools.py` relative to the (attacker-chosen) source path would be evil/tools.py
    tmp_path, program = layout
    (tmp_path / "evil" / "tools.py").write_text(EVIL)
    (tmp_path / "art" / "tools.py").unlink()
    path = crafted(tmp_path, program, "tools.py", file=str(tmp_path / "evil" / "w.pflow"))
    assert cli("run", str(path), "--input", "q=hi") == 1
    assert "cannot find module file 'tools.py' in the artifact's folder" in capsys.readouterr().err
    assert not imported(tmp_path)


def test_symlink_out_of_the_folder_is_refused(layout, capsys):
    tmp_path, program = layout
    os.symlink(tmp_path / "evil" / "evil.py", tmp_path / "art" / "link.py")
    path = crafted(tmp_path, program, "link.py")
    assert cli("run", str(path), "--input", "q=hi") == 1
    assert "resolves outside the artifact's folder" in capsys.readouterr().err
    assert not imported(tmp_path)


def test_unused_functions_are_not_imported(layout, capsys):
    tmp_path, program = layout
    extra = evolve(program.functions[0], name="unused", module="../evil/evil.py", attr="shout")
    path = tmp_path / "art" / "unused.pfc"
    artifact.save(evolve(program, functions=(*program.functions, extra)), path)
    assert cli("run", str(path), "--input", "q=hi") == 0
    assert capsys.readouterr().out == "HI\n" and not imported(tmp_path)


def test_swapped_metric_is_refused(layout, capsys):
    # the reproduction: a metric from elsewhere made eval report exact_match 1.000
    tmp_path, program = layout
    path = crafted(tmp_path, program, "../evil/evil.py", fn="exact_match")
    assert cli("eval", str(path), "--data", str(tmp_path / "data.jsonl")) == 2
    assert "refusing to import" in capsys.readouterr().err and not imported(tmp_path)
    assert cli("eval", str(path), "--data", str(tmp_path / "data.jsonl"), "--trust-code") == 0
    assert capsys.readouterr().out.startswith("exact_match 1.000")


def test_inspect_lists_the_user_files(layout, capsys):
    tmp_path, program = layout
    path = crafted(tmp_path, program, "../evil/evil.py")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "user code this workflow imports when it runs:" in out
    assert "  ../evil/evil.py (refused unless --trust-code: a path out of its folder)" in out
    assert not imported(tmp_path)
    assert main(["inspect", str(tmp_path / "art" / "w.pfc")]) == 0
    assert "  tools.py (in the artifact's folder)" in capsys.readouterr().out


def test_invalid_std_module_name_is_a_bind_error():
    from promptc.bind import load_module

    for bad in ("std..text", "std.", "std.text.", "std.te/xt"):
        with pytest.raises(BindError):
            load_module(bad)
