"""`@promptc.workflow`: the Python subset lowers to the same IR as the .pflow twin."""

from __future__ import annotations

import importlib.util
import itertools
import textwrap
from pathlib import Path

import pytest

import promptc
from promptc.compiler import compile_file, compile_source
from promptc.errors import CompileError
from promptc.frontend.spans import strip_spans

ROOT = Path(__file__).resolve().parents[2]
_count = itertools.count()


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"promptc_test_wf_{next(_count)}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write(tmp_path: Path, src: str, name: str = "wf.py") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(src).lstrip("\n"), encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "pflow, py, name",
    [
        ("examples/trec/trec.pflow", "examples/trec/trec_workflow.py", "trec"),
        ("examples/multihop/multihop.pflow", "examples/multihop/multihop_workflow.py", "multihop"),
        ("examples/router/router.pflow", "examples/router/router_workflow.py", "router"),
        ("examples/fanout/fanout.pflow", "examples/fanout/fanout_workflow.py", "fanout"),
        ("examples/compose/compose.pflow", "examples/compose/compose_workflow.py", "compose"),
    ],
)
def test_twins_give_identical_ir(pflow, py, name):
    from_pflow = compile_file(ROOT / pflow)
    wf = getattr(load(ROOT / py), name)
    from_py = promptc.compile_workflow(wf)
    assert from_py is wf.program
    assert strip_spans(from_py) == strip_spans(from_pflow)
    assert from_py.passes == from_pflow.passes and len(from_py.nodes) == len(from_pflow.nodes)
    # the spans of the decorated program point into the Python file (or, for the nodes of
    # an inlined workflow, into the Python file of that workflow)
    assert all(n.span.file.endswith(".py") for n in from_py.nodes)
    assert any(n.span.file.endswith(Path(py).name) for n in from_py.nodes)


HEADER = '''
import promptc
from typing import Any
task = promptc.model("TASK", default="scripted/echo")
instr = promptc.prompt("Be brief.", trainable=True, role="style")
strip = promptc.use("std.text", "strip")
@promptc.llm(via=task, system="{instr}", user="{q}\\n{h}")
def step(q: str, h: str) -> dict: ...
'''

PFLOW_HEADER = '''
use std.text { strip }
model task = env("TASK", "scripted/echo")
param instr: prompt trainable "style" = "Be brief."
llm step(q: text, h: text) -> json via task { system "{instr}", user "{q}\\n{h}" }
'''


def test_loop_max_mapping_and_augmented_assign(tmp_path):
    py = write(tmp_path, HEADER + '''
@promptc.workflow
def agent(q: str) -> Any:
    """A docstring is allowed."""
    h = ""
    last = ""
    for _ in range(4):
        s = step(q, h)
        h += strip(s.thought) + "\\n"
        last = s.arg
        if s.action == "finish" or not (s.ok == True):
            break
    return [last, h][0]
''')
    pf = PFLOW_HEADER + '''
workflow agent(q: json) -> json {
  let h = ""
  let last = ""
  loop max 4 {
    let s = step(q, h)
    h = h + (strip(s.thought) + "\\n")
    last = s.arg
    break if s.action == "finish" or not (s.ok == true)
  }
  return [last, h][0]
}
'''
    wf = load(py).agent
    # the Python function's `q: str` vs the .pflow's `q: json`: compare after aligning that one type
    p_py = strip_spans(wf.program)
    p_pf = strip_spans(compile_source(pf.replace("agent(q: json)", "agent(q: text)"), str(tmp_path / "x.pflow")))
    assert p_py.workflow == p_pf.workflow
    loop = [n for n in promptc.compile_workflow(wf).nodes if n.time is not None]
    assert {n.time.loop for n in loop} == {"step"} and max(n.time.step for n in loop) == 3


def test_if_elif_else_and_fan_out_mapping(tmp_path):
    py = write(tmp_path, HEADER + '''
N = 3
@promptc.workflow
def wf(q: str, xs: list[str]) -> Any:
    h = ""
    if q == "a":
        h = step(q, h)
    elif q == "b":
        t = strip(q)
        h = step(t, h)
    else:
        h = "other"
    outs = [h]
    for x in xs[:N]:
        if x != "":
            outs = outs + [step(x, h)]
    return outs
''')
    pf = PFLOW_HEADER + '''
workflow wf(q: text, xs: list[text]) -> json {
  let h = ""
  if q == "a" {
    h = step(q, h)
  } else if q == "b" {
    let t = strip(q)
    h = step(t, h)
  } else {
    h = "other"
  }
  let outs = [h]
  for x in xs max 3 {
    if x != "" { outs = outs + [step(x, h)] }
  }
  return outs
}
'''
    p_py = strip_spans(load(py).wf.program)
    p_pf = strip_spans(compile_source(pf, str(tmp_path / "x.pflow")))
    assert p_py.workflow == p_pf.workflow
    assert any(n.op == "select" and n.target == "h" for n in p_py.nodes)
    assert {n.time.loop for n in p_py.nodes if n.time is not None} == {"x"}


def test_for_range_is_a_for_loop_with_module_constant_bound(tmp_path):
    py = write(tmp_path, HEADER + '''
HOPS = 3
@promptc.workflow
def hops(q: str) -> Any:
    h = ""
    for hop in range(HOPS):
        h = step(q, h)
    return h
''')
    program = load(py).hops.program
    steps = sorted({n.time.step for n in program.nodes if n.time is not None and n.time.loop == "hop"})
    assert steps == [0, 1, 2]


def test_plain_function_of_the_same_file_is_bound(tmp_path):
    py = write(tmp_path, HEADER + '''
def shout(s: str) -> str:
    """Upper-cases s."""
    return s.upper()

@promptc.workflow
def wf(q: str) -> str:
    return shout(q)
''')
    program = load(py).wf.program
    fn = program.function("shout")
    assert fn.module == "wf.py" and fn.doc == "Upper-cases s."


def _error(tmp_path, body: str, indent: str = "") -> CompileError:
    src = HEADER + textwrap.indent(textwrap.dedent(body), indent)
    py = write(tmp_path, src)
    with pytest.raises(CompileError) as info:
        mod = load(py)
        for v in vars(mod).values():
            if isinstance(v, promptc.decorator.WorkflowFunction):
                v.program
    return info.value


@pytest.mark.parametrize(
    "stmt, msg",
    [
        ("while True:\n    pass", "`while` loops are unbounded"),
        ("if q:\n    q = q", "the condition of an `if` must be bool, got text"),
        ("for x in q[1:3]:\n    q = q", "fan out over the first N items"),
        ("for x in q[:n]:\n    q = q", "unbounded loop: the bound 'n'"),
        ("q: str = q", "annotated assignments are not supported"),
        ("a, b = q, q", "assign to one plain variable"),
        ("x = f'{q}'", "f-strings are not supported"),
        ("x = q * 2", "unsupported operator"),
        ("x = strip(s=q)", "positional arguments only"),
        ("x = q[1:2]", "slices are not supported"),
        ("x = 1 < 2 < 3", "one comparison at a time"),
        ("step(q, q)", "an expression statement has no effect"),
        ("x = None", "unsupported constant None"),
        ("for i in range(3):\n    q = step(q, q)\n    if i == 2:\n        break", "has no index; name it `_`"),
        ("for i in [1, 2]:\n    q = q", "iterates over `range(N)`"),
        ("for i in range(n):\n    q = q", "unbounded loop: the bound 'n'"),
    ],
)
def test_unsupported_python_is_located(tmp_path, stmt, msg):
    body = "@promptc.workflow\ndef wf(q: str) -> str:\n" + textwrap.indent(stmt, "    ") + "\n    return q\n"
    err = _error(tmp_path, body)
    assert msg in err.message
    header_lines = HEADER.lstrip("\n").count("\n")
    assert err.span.file.endswith("wf.py")
    assert err.span.line == header_lines + 3  # the statement's own line
    rendered = err.render()
    first = stmt.splitlines()[0]
    assert first.strip()[:5] in rendered.splitlines()[1]


def test_error_columns_map_to_the_real_file_when_indented(tmp_path):
    body = """
    if True:
        @promptc.workflow
        def wf(q: str) -> str:
            x = questoin
            return x
    """
    err = _error(tmp_path, body)
    assert err.message.startswith("unknown name 'questoin'")
    line = err.render().splitlines()[1]
    caret = err.render().splitlines()[2]
    assert line.strip() == "x = questoin"
    assert caret.index("^") == line.index("questoin")


def test_llm_stub_cannot_be_called_directly(tmp_path):
    mod = load(write(tmp_path, HEADER))
    with pytest.raises(TypeError, match="inside a @promptc.workflow"):
        mod.step("a", "b")


def test_bad_declarations():
    with pytest.raises(CompileError, match="needs via=MODEL"):
        promptc.llm(system="x")
    with pytest.raises(CompileError, match="unknown entry 'sistem'"):
        promptc.llm(via=promptc.model(default="x"), sistem="x")
    with pytest.raises(CompileError, match="K >= 1"):
        promptc.demos(max=0)


def test_error_columns_survive_a_line_separator_inside_a_string(tmp_path):
    # U+2028 ends a line for str.splitlines() but not for Python: a string holding one must
    # not shift the lines the columns are read from.
    body = """
    @promptc.workflow
    def wf(q: str) -> str:
        y = "a\u2028b"
        x = strip("éé", questoin)
        return x
    """
    err = _error(tmp_path, body)
    assert err.message.startswith("unknown name 'questoin'")
    header_lines = HEADER.lstrip("\n").count("\n")
    assert err.span.line == header_lines + 5  # a blank line, the decorator, def, y = ..., x = ...
    src = (tmp_path / "wf.py").read_text(encoding="utf-8").split("\n")[err.span.line - 1]
    assert src[err.span.col - 1 :].startswith("questoin")


def test_train_supports_maps_to_the_train_block_and_its_errors_point_at_the_call(tmp_path):
    src = HEADER + '''
f1 = promptc.use("std.metrics", "f1")
@promptc.workflow(train=promptc.train(metric=f1, supports={SUPPORTS}))
def wf(q: str) -> str:
    found = step(q, "")
    return strip(found)
'''
    mod = load(write(tmp_path, src.replace("{SUPPORTS}", '{"found": "gold"}')))
    (s,) = mod.wf.program.train.supports
    assert (s.value, s.field, s.nodes) == ("found", "gold", ("found",))
    mod = load(write(tmp_path, src.replace("{SUPPORTS}", '{"fuond": "gold"}'), "wf2.py"))
    with pytest.raises(CompileError, match="workflow 'wf' has no variable 'fuond' \\(did you mean 'found'\\?\\)") as info:
        mod.wf.program
    lines = (tmp_path / "wf2.py").read_text(encoding="utf-8").splitlines()
    assert info.value.span.file.endswith("wf2.py")
    assert lines[info.value.span.line - 1].startswith("@promptc.workflow(train=promptc.train(")  # the call's line
    with pytest.raises(CompileError, match="supports=...\\) needs"):
        load(write(tmp_path, src.replace("{SUPPORTS}", '{"found": 3}'), "wf3.py"))
