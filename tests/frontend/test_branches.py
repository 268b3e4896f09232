"""`if` / `else` and the fan-out `for x in xs max N`: parsing, lowering to guards and
selects, unrolling, and what runs — on the real interpreter with a fake engine — and the
backward program's feedback (only the branch that ran; every fan-out item, in order)."""

from __future__ import annotations

import asyncio
import json

import pytest

from promptc.compiler import compile_source
from promptc.frontend import ast as A
from promptc.frontend.parser import parse
from promptc.optim import templates
from promptc.optim.backward import backward
from promptc.printer import format_program
from promptc.runtime.interpreter import run_forward
from promptc.runtime.records import CallRequest, CallResult

HEAD = """\
model task = "scripted/echo"
param a: prompt trainable "a" = "A-instruction"
param b: prompt trainable "b" = "B-instruction"
llm fa(x: text) -> text via task { system "{a}"; user "{x}" }
llm fb(x: text) -> text via task { system "{b}"; user "{x}" }
"""

BACKWARD_SYSTEM = templates.render("backward_system")


class Engine:
    """Task calls answer `<system initial>(<user>)`; backward calls give feedback naming the
    step, for every key asked about."""

    def __init__(self):
        self.task: list[tuple[str, str]] = []
        self.backward: list[str] = []

    async def call(self, req: CallRequest) -> CallResult:
        system, user = req.messages[0]["content"], req.messages[-1]["content"]
        if system == BACKWARD_SYSTEM:
            self.backward.append(user)
            keys = list(json.loads(user.strip().splitlines()[-1]))
            return CallResult(text=json.dumps({k: f"fix it ({k})" for k in keys}))
        self.task.append((system, user))
        return CallResult(text=f"{system[0]}({user})")


def compile_wf(sig: str, body: str):
    return compile_source(HEAD + f"workflow w({sig}) -> text {{\n{body}\n}}\n", "w.pflow")


def run(program, **inputs):
    engine = Engine()
    (trace,) = run_forward(program, [inputs], engine)
    assert trace.error is None, trace.error
    return trace, engine


# -- syntax -------------------------------------------------------------------------------


def test_if_else_if_else_parses_to_nested_ifs():
    src = HEAD + """workflow w(x: text) -> text {
  let y = ""
  if x == "1" { y = fa(x) }
  else if x == "2" {
    y = fb(x)
  } else { y = x }
  return y
}"""
    (wf,) = [d for d in parse(src, "w.pflow").items if isinstance(d, A.WorkflowDecl)]
    stmt = wf.body[1]
    assert isinstance(stmt, A.If) and len(stmt.body) == 1
    (inner,) = stmt.orelse
    assert isinstance(inner, A.If) and isinstance(inner.orelse[0], A.Assign)
    assert (stmt.span.line, inner.span.line) == (8, 9)


def test_for_each_parses():
    src = HEAD + "workflow w(xs: list[text]) -> text {\n  let s = \"\"\n  for x in xs max 3 { s = s + fa(x) }\n  return s\n}"
    (wf,) = [d for d in parse(src, "w.pflow").items if isinstance(d, A.WorkflowDecl)]
    loop = wf.body[1]
    assert isinstance(loop, A.ForEach) and loop.var == "x" and loop.bound.value == 3
    assert isinstance(loop.items, A.Name) and loop.items.id == "xs"


# -- if / else ------------------------------------------------------------------------------

ROUTE = """
  let y = "none"
  if x == "1" {
    y = fa(x)
  } else if x == "2" {
    y = fb(x)
  }
  return y
"""


@pytest.mark.parametrize(
    "x, out, calls",
    [("1", "A(1)", ["A"]), ("2", "B(2)", ["B"]), ("3", "none", [])],
)
def test_else_if_chain_runs_one_branch_and_keeps_the_old_value_otherwise(x, out, calls):
    program = compile_wf("x: text", ROUTE)
    trace, engine = run(program, x=x)
    assert trace.output == out
    assert [s[0] for s, _u in engine.task] == calls  # a branch not taken makes no model call


def test_if_lowering_guards_both_branches_and_merges_with_selects():
    program = compile_wf("x: text", ROUTE)
    n = {node.name: node for node in program.nodes}
    assert n["y.1"].op == "llm" and n["y.1"].guard == "if.cond"
    assert n["if.else"].op == "prim" and n["if.else"].target == "not" and n["if.else"].args == ("if.cond",)
    # the inner if, inside the else branch: then = and(outer, c2), else = guard(outer, c2)
    assert n["if.then"].args == ("if.else", "if.cond.1") and n["if.then"].target == "and"
    assert "if.else.1" not in n  # the inner `if` has no else: its guard is dead code
    assert n["y.2"].guard == "if.then"
    inner, outer = n["y.merge"], n["y.merge.1"]
    assert inner.op == "select" and inner.args == ("if.cond.1", "y.2", "y") and inner.guard == "if.else"
    assert outer.args == ("if.cond", "y.1", "y.merge") and outer.guard is None and outer.target == "y"
    assert program.workflow.output == "y.merge.1"
    text = format_program(program)
    assert "%y.2: text = llm fb(%x)" in text and "if %if.then" in text


def test_variables_declared_in_a_branch_are_local_to_it():
    with pytest.raises(Exception) as info:
        compile_wf("x: text", '  if x == "1" {\n    let z = fa(x)\n  }\n  return z')
    assert "unknown name 'z'" in str(info.value)


def test_if_inside_a_loop_max_and_a_loop_inside_an_if():
    body = """
  let h = x
  if x != "" {
    loop max 3 {
      if h == "1" { h = fa(h) } else { h = fb(h) }
      break if h == "A(1)"
    }
  }
  return h
"""
    program = compile_wf("x: text", body)
    trace, engine = run(program, x="1")
    assert trace.output == "A(1)" and [s[0] for s, _ in engine.task] == ["A"]
    trace, engine = run(program, x="2")
    assert trace.output == "B(B(B(2)))" and [s[0] for s, _ in engine.task] == ["B", "B", "B"]
    trace, engine = run(program, x="")
    assert trace.output == "" and engine.task == []


def test_else_guard_under_an_enclosing_branch_is_a_guard_node():
    body = '''
  let y = "none"
  if x != "" {
    if x == "1" { y = fa(x) } else { y = fb(x) }
  }
  return y
'''
    n = {node.name: node for node in compile_wf("x: text", body).nodes}
    assert n["if.then"].op == "prim" and n["if.then"].args == ("if.cond", "if.cond.1")
    assert n["if.else.1"].op == "guard" and n["if.else.1"].args == ("if.cond", "if.cond.1")
    assert n["y.2"].guard == "if.else.1"


def test_backward_feeds_only_the_branch_that_ran():
    program = compile_wf("x: text", ROUTE)
    batch = [{"x": "1"}, {"x": "2"}, {"x": "3"}]
    engine = Engine()
    traces = run_forward(program, batch, engine)
    grads = asyncio.run(backward(program, traces, batch, [0.0, 0.0, 0.0], engine))
    assert [(g.param, g.sample, g.node) for g in grads.items] == [("a", 0, "y.1"), ("b", 1, "y.2")]
    assert grads.calls == 2  # sample 2 took no branch with an llm: no backward call at all


# -- fan-out ------------------------------------------------------------------------------

FAN = """
  let outs = [""]
  for p in ps max 3 {
    outs = outs + [fa(p)]
  }
  return join(outs, "|")
"""


def compile_fan(body: str = FAN):
    return compile_source(
        "use std.text { join }\n" + HEAD + f"workflow w(ps: list[text]) -> text {{\n{body}\n}}\n", "w.pflow"
    )


@pytest.mark.parametrize(
    "ps, out",
    [([], ""), (["x"], "|A(x)"), (["x", "y", "z"], "|A(x)|A(y)|A(z)"), (["1", "2", "3", "4", "5"], "|A(1)|A(2)|A(3)")],
)
def test_fan_out_runs_one_step_per_item_up_to_the_bound(ps, out):
    program = compile_fan()
    trace, engine = run(program, ps=ps)
    assert trace.output == out
    assert len(engine.task) == min(len(ps), 3)


def test_fan_out_unrolls_into_guarded_steps():
    program = compile_fan()
    n = {node.name: node for node in program.nodes}
    assert n["len@p"].op == "prim" and n["len@p"].target == "len"
    for s in range(3):
        alive = n[f"alive@p#{s}"]
        assert alive.op == "prim" and alive.target == "lt" and alive.args == (f"k@p#{s}", "len@p")
        item = n[f"p@p#{s}"]
        assert item.op == "index" and item.target == s and item.guard == f"alive@p#{s}"
        assert str(item.type) == "text" and str(item.time) == f"p#{s}"
        assert n[f"outs.sel@p#{s}"].op == "select" and n[f"outs.sel@p#{s}"].args[0] == f"alive@p#{s}"


def test_fan_out_gradients_reach_the_per_item_prompt_from_every_item_in_order():
    program = compile_fan()
    batch = [{"ps": ["x", "y", "z"]}, {"ps": ["u"]}]
    engine = Engine()
    traces = run_forward(program, batch, engine)
    grads = asyncio.run(backward(program, traces, batch, [0.0, 0.0], engine))
    by = grads.by_sample("a")
    assert [(g.node, g.step) for g in by[0]] == [("t2@p#0", 0), ("t2@p#1", 1), ("t2@p#2", 2)]
    assert [(g.node, g.step) for g in by[1]] == [("t2@p#0", 0)]  # steps past the list's end did not run


def test_fan_out_inside_an_if_and_an_if_inside_a_fan_out():
    body = """
  let outs = [""]
  if len_ok {
    for p in ps max 2 {
      if p == "b" { outs = outs + [fb(p)] } else { outs = outs + [fa(p)] }
    }
  }
  return join(outs, "|")
"""
    program = compile_source(
        "use std.text { join }\n" + HEAD + f"workflow w(ps: list[text], len_ok: bool) -> text {{\n{body}\n}}\n",
        "w.pflow",
    )
    trace, _ = run(program, ps=["a", "b", "c"], len_ok=True)
    assert trace.output == "|A(a)|B(b)"
    trace, engine = run(program, ps=["a", "b"], len_ok=False)
    assert trace.output == "" and engine.task == []
