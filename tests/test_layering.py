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
        f"code = inspect.main(argparse.Namespace(file={str(path)!r}, history=False, json=False))\n"
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


# -- the import graph: no cycle, no upward edge (imports inside functions included) --------

# layer -> the layers it must not import, even inside a function
FORBIDDEN = {
    "core": {"frontend", "passes", "runtime", "optim", "compiler", "decorator", "api", "cli", "lsp"},
    "frontend": {"passes", "runtime", "optim", "compiler", "decorator", "api", "cli", "lsp"},
    "passes": {"frontend", "runtime", "optim", "compiler", "decorator", "api", "cli", "lsp"},
    "runtime": {"frontend", "passes", "optim", "compiler", "decorator", "api", "cli", "lsp"},
    "compiler": {"runtime", "optim", "decorator", "api", "cli", "lsp"},
    "optim": {"frontend", "compiler", "decorator", "api", "cli", "lsp"},
}
TOP = {
    "frontend", "passes", "runtime", "optim", "cli", "compiler", "decorator", "api", "lsp", "stdlib", "grammar", "__main__",
}


def _layer(module: str) -> str:
    part = module.split(".")[1] if "." in module else "promptc"
    return part if part in TOP else "core"


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in (ROOT / "promptc").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, path in modules.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            graph[m].update(t for t in targets if t in modules and t != m)
    return graph


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert cycles == []


def test_layers_import_downward_only():
    graph = _graph()
    upward = [
        f"{m} -> {t}" for m, targets in graph.items() for t in targets if _layer(t) in FORBIDDEN.get(_layer(m), ())
    ]
    assert upward == []


def test_serving_an_artifact_imports_no_compiler_or_training_code(tmp_path):
    path = tmp_path / "w.pfc"
    (tmp_path / "rules.json").write_text('{"rules": [{"match": "(hello)", "reply": "\\\\1 back"}]}')
    program = compile_source(SRC.replace("scripted/echo", "scripted/rules.json"), str(tmp_path / "w.pflow"))
    artifact.save(program, path, {})
    script = (
        "import sys\n"
        "import promptc\n"
        f"wf = promptc.load({str(path)!r}, no_cache=True)\n"
        "print('answer', wf(q='hello'))\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('promptc.optim', 'promptc.passes', 'promptc.frontend',"
        " 'promptc.compiler', 'lark')))\n"
        "print('imported', bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "answer hello back" in r.stdout  # it did run the workflow
    assert "imported []" in r.stdout
