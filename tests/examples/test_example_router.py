"""examples/router end to end on the scripted engine: a classifier routes each HotpotQA
question to one of two answering llms (`if` / `else`), each with its own trainable
instruction; backward on the failures; one optimizer step through the real Trainer.

The scripted task model routes every question right (by the row's `type`); each answering
llm gives the gold answer only when its instruction states RULE, else "unknown". The test
checks that the nodes of the branch not taken do not run, and that each instruction
receives gradients from the samples routed to it and from no other.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from example_script import EXAMPLES, Brain, rows

from promptc.compiler import compile_file
from promptc.optim.backward import backward
from promptc.optim.trainer import Trainer
from promptc.printer import format_backward, format_program
from promptc.runtime.engine import make_engine
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import run_forward

RULE = "Copy the answer word for word from the evidence."
ALL = {r["question"]: r for split in ("train", "val", "test") for r in rows("router", split)}


def task(system: str, user: str) -> str:
    m = re.search(r"Question: (.*?)\n(Kind|Answer):$", user, re.S)
    question, what = m.groups()
    row = ALL[question]
    if what == "Kind":
        return row["type"]
    return row["answer"] if RULE in system else "unknown"


@pytest.fixture
def brain(monkeypatch):
    b = Brain("ex_router", task, RULE)
    b.register(monkeypatch)
    return b


def pick(split: str, n: int) -> list[dict]:
    data = rows("router", split)
    return [r for r in data if r["type"] == "comparison"][:n] + [r for r in data if r["type"] == "bridge"][:n]


def test_the_ir_shows_the_guards_and_the_backward_program_both_branches():
    program = compile_file(EXAMPLES / "router" / "router.pflow")
    ir = format_program(program)
    assert re.search(r"%reply\.1: text = llm compare\(%question, %evidence\) .*if %if\.cond$", ir, re.M)
    assert re.search(r"%reply\.2: text = llm bridge\(%question, %evidence\) .*if %if\.else$", ir, re.M)
    assert "%if.else: bool = not(%if.cond)" in ir
    assert "select(%if.cond, %reply.1, %reply.2)" in ir
    back = format_backward(program)
    assert re.search(r"grad %reply\.merge: select -> %reply\.1, %reply\.2 .*only the branch %if\.cond took", back)
    assert re.search(r"grad %reply\.1: llm -> compare_instruction", back)
    assert re.search(r"grad %reply\.2: llm -> bridge_instruction", back)
    assert {p.name for p in program.trainable()} == {"compare_instruction", "bridge_instruction"}


def test_each_instruction_learns_only_from_the_questions_routed_to_it(brain, tmp_path):
    program = compile_file(EXAMPLES / "router" / "router.pflow")
    engine = make_engine(cache_dir=tmp_path / "cache")
    batch = pick("train", 2)
    kinds = [r["type"] for r in batch]
    assert kinds == ["comparison", "comparison", "bridge", "bridge"]

    traces = run_forward(program, batch, engine)
    assert [t.output for t in traces] == ["unknown"] * 4 and all(t.error is None for t in traces)
    for t, kind in zip(traces, kinds):
        ran = {r.name for r in t.records if r.executed}
        skipped = {r.name for r in t.records if not r.executed}
        taken, other = ("reply.1", "reply.2") if kind == "comparison" else ("reply.2", "reply.1")
        assert taken in ran and other in skipped
    # one answering call per sample: the branch not taken made no model call
    answer_calls = [u for _s, u in brain.task_prompts if u.endswith("Answer:")]
    assert len(answer_calls) == 4
    scores = score(program, traces, batch)
    assert scores == [0.0] * 4

    grads = asyncio.run(backward(program, traces, batch, scores, engine))
    assert grads.samples == (0, 1, 2, 3)
    assert grads.calls == 4  # one llm rule per failing sample: the branch that ran
    compare = grads.for_param("compare_instruction")
    bridge = grads.for_param("bridge_instruction")
    assert sorted(g.sample for g in compare) == [0, 1] and {g.node for g in compare} == {"reply.1"}
    assert sorted(g.sample for g in bridge) == [2, 3] and {g.node for g in bridge} == {"reply.2"}
    assert all(RULE in g.text for g in compare + bridge)
    # the backward engine was asked about each answering step with its own questions only
    for node, rows_ in (("reply.1", batch[:2]), ("reply.2", batch[2:])):
        asked = [p for p in brain.backward_prompts if f"step `{node}`" in p]
        assert len(asked) == 2
        assert all(any(r["question"] in p for r in rows_) for p in asked)
        others = batch[2:] if node == "reply.1" else batch[:2]
        assert not any(r["question"] in p for p in asked for r in others)

    train, val = pick("train", 3), pick("val", 3)
    result = Trainer(
        program, train, val, engine, steps=2, batch_size=6, proposals=1, run_dir=tmp_path / "run", seed=0
    ).fit()
    assert result.start_val == 0.0 and result.best_val == 1.0
    accepted = [p for h in result.history for p in h["accepted"]]
    assert set(accepted) == {"compare_instruction", "bridge_instruction"}
    for name in ("compare_instruction", "bridge_instruction"):
        assert RULE in result.program.param(name).text
        prompt = brain.optimizer_prompt_for(name)[0]
        feedback = prompt.split("Feedback from failing examples", 1)[1]
        own = "comparison" if name == "compare_instruction" else "bridge"
        # the optimizer of each instruction saw failing examples of its own kind only
        shown = [q for q, r in ALL.items() if q in feedback]
        assert shown and all(ALL[q]["type"] == own for q in shown)
