from attrs import evolve

from promptc.passes.gradient import gradient
from promptc.compiler import run_passes
from promptc.printer import format_backward, format_dot, format_program, preview

from tests.passes.programs import trec
from tests.passes.test_unroll import agent

TREC_IR = '''\
; t.pflow  sha256:000000000000  passes: inline, resolve, typecheck, unroll, dce, peers, gradient
models:
  task = "scripted/echo"
params:
  instruction: prompt trainable role "what to classify" = "Classify the question."  peers: answer_format, shots
  answer_format: prompt trainable = "Reply with the label only."  peers: instruction, shots
  shots: demos(max=4) trainable = 0 demo(s)  peers: answer_format, instruction
functions:
  strip = std.text.strip(s: text) -> text  "Doc of strip."
  first_word = std.text.first_word(s: text) -> text  "Doc of first_word."
  exact_match = std.metrics.exact_match(got: json, expected: json) -> float  "Doc of exact_match, which is long enough to be cu…"
llms:
  classify(question: text) -> text via task  uses instruction, answer_format, shots
    system "{instruction}\\n{answer_format}"
    demos shots
    user "Question: {question}"
workflow trec(question: text) -> text {
  %question: text = input question        @ t.pflow:11:1
  %raw: text = llm classify(%question)    @ t.pflow:12:1
  %s: text = call strip(%raw)             @ t.pflow:13:1
  %out: text = call first_word(%s)        @ t.pflow:14:1
  return %out
}
train trec: metric exact_match, answer answer
'''


def fixed_docs(p):
    """The compiled TREC program with docstrings that do not depend on the stdlib's wording."""
    docs = {"strip": "Doc of strip.", "first_word": "Doc of first_word.",
            "exact_match": "Doc of exact_match, which is long enough to be cut.\nSecond line."}
    return evolve(p, functions=tuple(evolve(f, doc=docs[f.name]) for f in p.functions))


def test_program_golden():
    assert format_program(fixed_docs(run_passes(trec()))) == TREC_IR


TREC_BACKWARD = '''\
backward trec: 7 gradient node(s) from the loss on %out, in run order
  %loss = loss %out                                                  @ t.pflow:14:1
  %out.grad = sum(%loss)
  %out.back = grad %out: call -> %s                                  @ t.pflow:14:1  function first_word "Doc of first_word."
  %s.grad = sum(%out.back)
  %s.back = grad %s: call -> %raw                                    @ t.pflow:13:1  function strip "Doc of strip."
  %raw.grad = sum(%s.back)
  %raw.back = grad %raw: llm -> instruction, answer_format, shots    @ t.pflow:12:1  llm classify
peers:
  instruction: answer_format, shots
  answer_format: instruction, shots
  shots: answer_format, instruction
'''


def test_backward_golden():
    p = gradient(fixed_docs(run_passes(trec(), until="peers")))  # the docstrings travel as fields
    assert format_backward(p) == TREC_BACKWARD


def test_backward_of_a_loop_shows_time_indices_and_select_routing():
    from pathlib import Path

    from promptc.compiler import compile_file

    react = Path(__file__).resolve().parents[1] / "examples" / "agent" / "react.pflow"
    lines = format_backward(compile_file(react)).splitlines()
    line = next(l for l in lines if "= grad %answer.sel@step#3: select -> %answer.2@step#3, %answer.sel@step#2" in l)
    assert line.rstrip().endswith("[step#3]  loop-carried value: only the branch %alive@step#3 took")
    summed = next(l for l in lines if l.startswith("  %answer.sel@step#3.grad = "))
    assert summed.split() == ["%answer.sel@step#3.grad", "=", "sum(%answer.sel@step#4.back)", "[step#3]"]


def test_loops_print_as_blocks_then_as_time_steps():
    before = format_program(agent(2).build())
    assert "%loop_act = loop act max 2 carry n = %n as %n.act.ph {" in before
    assert "      n <- %m" in before and "      break if %done" in before and "} -> %n.after.act = n" in before
    after = format_program(run_passes(agent(2).build()))
    line = next(l for l in after.splitlines() if l.lstrip().startswith("%m@act#1"))
    assert line.split("@ t.pflow:3:1")[1].split() == ["[act#1]", "if", "%alive@act#1"]
    assert "%n.sel@act#1: int = select(%alive@act#1, %m@act#1, %m@act#0)" in after


def test_dot_has_params_boxes_and_dashed_backward_edges():
    dot = format_dot(run_passes(trec()))
    assert dot.startswith('digraph "trec" {') and dot.rstrip().endswith("}")
    assert '"param:instruction" [shape=box' in dot
    assert '"raw" [shape=ellipse' in dot and '"out" [shape=doubleoctagon' in dot
    assert '"question" -> "raw";' in dot and '"param:shots" -> "raw";' in dot
    assert '"raw" -> "param:instruction" [style=dashed, color=red' in dot
    assert '"s" -> "raw" [style=dashed, color=red, fontcolor=red, label="call"' in dot
    assert '"grad:loss" -> "out" [style=dashed' in dot  # the loss starts the backward program
    assert dot.count("style=dashed") == 6 and dot.count(", color=red") == 7  # 5 feedback edges, the loss


def test_guard_edges_in_dot_and_preview():
    dot = format_dot(run_passes(agent(3).build()))
    assert '"alive@act#1" -> "m@act#1" [style=dotted' in dot
    assert preview('a "b"\n  c', 80) == '"a \\"b\\"\\n  c"'
    assert preview("x" * 100, 10) == '"xxxxxxxxx…"'
