"""AST -> IR lowering: SSA names, node kinds, loops, declarations and located errors."""

from __future__ import annotations

import hashlib

import pytest

from promptc.errors import CompileError
from promptc.frontend.lower import lower
from promptc.frontend.parser import parse
from promptc.types import INT, TEXT

HEAD = """
use std.text { strip, join }
use std.metrics { exact_match }
model task = env("TASK", "local/default")
model big = "openai/gpt-4o"
param instr: prompt trainable "role" = "Be brief."
param shots: demos(max = 2)
llm ask(q: text, notes: text) -> text via task {
  system "{instr}", demos shots, user "{q} {notes}"
}
"""


def low(src: str):
    return lower(parse(HEAD + src, "t.pflow"))


def ops(nodes):
    return [(n.name, n.op, n.args, n.target) for n in nodes]


def test_declarations_and_program_fields():
    src = "workflow w(q: text) -> text { return q }\ntrain w { metric exact_match; answer label; teacher big }"
    p = low(src)
    assert p.file == "t.pflow" and p.source_hash == hashlib.sha256((HEAD + src).encode()).hexdigest()
    assert [(m.name, m.default, m.env) for m in p.models] == [("task", "local/default", "TASK"), ("big", "openai/gpt-4o", None)]
    assert [(f.name, f.module, f.attr) for f in p.functions] == [
        ("strip", "std.text", "strip"), ("join", "std.text", "join"), ("exact_match", "std.metrics", "exact_match")]
    assert [(x.name, x.kind, x.trainable, x.max_demos) for x in p.params] == [("instr", "prompt", True, None), ("shots", "demos", False, 2)]
    (llm,) = p.llms
    assert llm.demos == "shots" and [m.role for m in llm.messages] == ["system", "user"] and llm.uses == ()
    assert (p.train.metric, p.train.answer, p.train.teacher, p.train.backward) == ("exact_match", "label", "big", None)
    assert p.workflow.output == "q" and p.workflow.inputs == (("q", TEXT),)


def test_ssa_names_temporaries_and_node_kinds():
    p = low("""
workflow w(q: text) -> text {
  let raw = ask(q, "")
  raw = strip(raw)
  let parts = [raw, q]
  let first = parts[0]
  let same = raw == q and not (first == "x")
  raw = raw + join(parts, ",")
  let alias = raw
  return alias
}""")
    assert ops(p.nodes) == [
        ("q", "input", (), "q"),
        ("t1", "const", (), ""),
        ("raw", "llm", ("q", "t1"), "ask"),
        ("raw.1", "call", ("raw",), "strip"),
        ("parts", "list", ("raw.1", "q"), None),
        ("first", "index", ("parts",), 0),
        ("t2", "prim", ("raw.1", "q"), "eq"),
        ("t3", "const", (), "x"),
        ("t4", "prim", ("first", "t3"), "eq"),
        ("t5", "prim", ("t4",), "not"),
        ("same", "prim", ("t2", "t5"), "and"),
        ("t6", "const", (), ","),
        ("t7", "call", ("parts", "t6"), "join"),
        ("raw.2", "prim", ("raw.1", "t7"), "add"),
    ]
    assert p.workflow.output == "raw.2"
    assert p.node("q").type == TEXT and p.node("t1").type == TEXT and p.node("raw").type is None
    assert all(n.span is not None and n.span.file == "t.pflow" for n in p.nodes)


def test_for_loop_carried_variables():
    p = low("""
workflow w(q: text) -> text {
  let notes = ""
  for hop in 0..2 {
    let sub = ask(q, notes)
    notes = notes + sub
  }
  return notes
}""")
    loop_node = p.nodes[-1]
    assert loop_node.op == "loop" and loop_node.name == "loop.hop" and loop_node.target == "hop"
    lp = loop_node.loop
    assert (lp.label, lp.kind, lp.bound, lp.index) == ("hop", "for", 2, "hop")
    assert lp.carried == (("notes", "notes", "notes.1"),)
    assert ops(lp.body) == [("sub", "llm", ("q", "notes.1"), "ask"), ("notes.2", "prim", ("notes.1", "sub"), "add")]
    assert lp.updates == (("notes", "notes.2"),) and lp.brk is None
    assert lp.results == (("notes", "notes.3"),)
    assert p.workflow.output == "notes.3"


def test_loop_max_with_break_and_nested_loops():
    p = low("""
workflow w(q: text) -> text {
  let h = ""
  let last = ""
  loop max 3 {
    let step = ask(q, h)
    for i in 0..2 { h = h + step }
    last = step
    break if step == "done"
  }
  loop max 2 { h = strip(h) }
  return last + h
}""")
    first, second = [n for n in p.nodes if n.op == "loop"]
    lp = first.loop
    assert (lp.label, lp.kind, lp.bound, lp.index) == ("step", "max", 3, None)
    assert [c[0] for c in lp.carried] == ["h", "last"]
    inner = [n for n in lp.body if n.op == "loop"][0].loop
    assert inner.label == "i" and inner.carried[0][1] == lp.carried[0][2]  # inner starts from the outer placeholder
    assert lp.brk is not None and lp.body[-1].name == lp.brk and lp.body[-1].target == "eq"
    assert dict(lp.updates)["last"] == "step" and dict(lp.updates)["h"] == inner.results[0][1]
    assert second.loop.label == "step.1" and second.name == "loop.step.1"
    names = [n.name for n in p.nodes] + [n.name for n in lp.body]
    assert len(names) == len(set(names))


def test_loop_locals_do_not_escape():
    with pytest.raises(CompileError, match="unknown name 'sub'"):
        low("workflow w(q: text) -> text {\n for i in 0..2 { let sub = ask(q, q) }\n return sub\n}")


@pytest.mark.parametrize(
    "body, msg, line",
    [
        ("let x = q\n let x = q\n return x", "'x' is already defined at line", 2),
        ("y = q\n return q", "assignment to undeclared variable 'y'", 1),
        ("let instr = q\n return q", "'instr' is already declared as a param", 1),
        ("return instr", "'instr' is a param: params are used inside llm templates", 1),
        ("return ask", "'ask' is an llm, not a value", 1),
        ("let x = q(q)\n return x", "'q' is a variable", 1),
        ("let x = instr(q)\n return x", "'instr' is a param; only llms and functions can be called", 1),
        ("let x = ask(q)\n return x", "llm 'ask' takes 2 arguments, got 1", 1),
        ("let x = [q][n]\n return x", "a list index must be an integer constant", 1),
        ("for i in 1..3 { q = q }\n return q", "a for loop counts from 0", 1),
        ("for i in 0..0 { q = q }\n return q", "at least 1", 1),
        ("for i in 0..2 { i = q }\n return q", "cannot assign to the loop index 'i'", 1),
        ("for i in 0..2 { break if true }\n return q", "only allowed at the end of a `loop max", 1),
        ("loop max 2 { return q }\n return q", "`return` is only allowed at the end", 1),
        ("loop max q { q = q }\n return q", "must be an integer constant", 1),
        ("return q\n let x = q", "unreachable statement after `return`", 2),
        ("let x = q", "has no `return`", 0),
        ("ask = q\n return q", "cannot assign to 'ask': it is an llm", 1),
    ],
)
def test_workflow_errors(body, msg, line):
    src = "workflow w(q: text) -> text {\n " + body + "\n}"
    with pytest.raises(CompileError, match=msg.replace("(", r"\(").replace("[", r"\[").replace("`", ".")) as info:
        low(src)
    base = HEAD.count("\n") + 1
    assert info.value.span.line == base + line
    assert info.value.source is not None


@pytest.mark.parametrize(
    "src, msg",
    [
        ("model task = \"x\"", "duplicate model 'task'"),
        ("use std.text { instr }", "'instr' is already declared as a param"),
        ("llm g(q: text) -> text via nope { user \"{q}\" }", "unknown model 'nope'"),
        ("llm g(q: text) -> text via instr { user \"{q}\" }", "'instr' is a param, not a model"),
        ("llm g(q: text) -> text via task { user \"{nope}\" }", "placeholder '\\{nope\\}' in llm 'g' names neither"),
        ("llm g(q: text) -> text via task { user \"{shots}\" }", "names the demos param 'shots'"),
        ("llm g(q: text) -> text via task { demos instr, user \"{q}\" }", "'instr' is a prompt param"),
        ("llm g(q: text, q: int) -> text via task { user \"{q}\" }", "duplicate argument 'q'"),
        ("workflow v(q: text) -> text { return q }", "only one workflow per file"),
        ("train w { answer x }", "needs a metric"),
        ("train v { metric exact_match }", "train block names 'v', but the workflow is 'w'"),
        ("train w { metric strip; metric strip }", "'metric' is given twice"),
        ("train w { metric task }", "metric must be a function"),
        ("train w { metric exact_match; teacher instr }", "teacher: 'instr' is a param, not a model"),
    ],
)
def test_declaration_errors(src, msg):
    with pytest.raises(CompileError, match=msg):
        low("workflow w(q: text) -> text { return q }\n" + src)


def test_no_workflow():
    with pytest.raises(CompileError, match="no workflow"):
        low("")


def test_int_consts_and_inputs_typed():
    p = low("workflow w(n: int) -> int { let k = 3\n return k }")
    assert p.node("n").type == INT and p.node("k").type == INT and p.node("k").target == 3
