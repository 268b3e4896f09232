from attrs import evolve

from promptc.passes.pipeline import run_pipeline
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
    assert format_program(fixed_docs(run_pipeline(trec()))) == TREC_IR


def test_backward_golden():
    text = format_backward(run_pipeline(trec()))
    lines = text.splitlines()
    assert lines[0] == "backward trec: 3 rule(s), reverse topological order"
    assert lines[1].startswith("  grad %out: call -> %s    ") and '"first_word: Keeps only' in lines[1]
    assert lines[2].startswith("  grad %s: call -> %raw    ") and '"strip: Removes' in lines[2]
    assert lines[3] == '  grad %raw: llm -> instruction, answer_format, shots    "classify"'
    assert lines[4:] == [
        "peers:",
        "  instruction: answer_format, shots",
        "  answer_format: instruction, shots",
        "  shots: answer_format, instruction",
    ]


def test_loops_print_as_blocks_then_as_time_steps():
    before = format_program(agent(2).build())
    assert "%loop_act = loop act max 2 carry n = %n as %n.act.ph {" in before
    assert "      n <- %m" in before and "      break if %done" in before and "} -> %n.after.act = n" in before
    after = format_program(run_pipeline(agent(2).build()))
    line = next(l for l in after.splitlines() if l.lstrip().startswith("%m@act#1"))
    assert line.split("@ t.pflow:3:1")[1].split() == ["[act#1]", "if", "%alive@act#1"]
    assert "%n.sel@act#1: int = select(%alive@act#1, %m@act#1, %m@act#0)" in after


def test_dot_has_params_boxes_and_dashed_backward_edges():
    dot = format_dot(run_pipeline(trec()))
    assert dot.startswith('digraph "trec" {') and dot.rstrip().endswith("}")
    assert '"param:instruction" [shape=box' in dot
    assert '"raw" [shape=ellipse' in dot and '"out" [shape=doubleoctagon' in dot
    assert '"question" -> "raw";' in dot and '"param:shots" -> "raw";' in dot
    assert '"raw" -> "param:instruction" [style=dashed' in dot
    assert '"s" -> "raw" [style=dashed' in dot
    assert dot.count("style=dashed") == 5


def test_guard_edges_in_dot_and_preview():
    dot = format_dot(run_pipeline(agent(3).build()))
    assert '"alive@act#1" -> "m@act#1" [style=dotted' in dot
    assert preview('a "b"\n  c', 80) == '"a \\"b\\"\\n  c"'
    assert preview("x" * 100, 10) == '"xxxxxxxxx…"'
