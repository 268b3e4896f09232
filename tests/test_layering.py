"""Which parts of promptc may import which: showing an artifact loads no training code,
and promptc's own code does not depend on the user-facing standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from promptc import artifact
from promptc.compiler import compile_source

ROOT = Path(__file__).resolve().parent.parent
SRC = """model m = "scripted/echo"
param p: prompt = "Say {{it}}."
llm f(q: text) -> text via m { system "{p}", user "{q}" }
workflow w(q: text) -> text { return f(q) }
"""


def test_inspect_loads_no_training_code(tmp_path):
    path = tmp_path / "w.pfc"
    program = compile_source(SRC, str(tmp_path / "w.pflow"))
    artifact.save(program, path, {"source_params": {"p": {"kind": "prompt", "text": "Say it."}}})
    script = (
        "import sys, argparse\n"
        "from promptc.cli import inspect\n"
        f"code = inspect.main(argparse.Namespace(file={str(path)!r}, history=False))\n"
        "print('exit', code)\n"
        "print('optim modules:', sorted(m for m in sys.modules if m.startswith('promptc.optim')))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "exit 0" in r.stdout and "(changed)" in r.stdout  # it did show the params
    assert "optim modules: []" in r.stdout


def test_promptc_does_not_import_the_user_stdlib():
    offenders = []
    for path in sorted((ROOT / "promptc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("promptc.stdlib")]
    assert offenders == []
