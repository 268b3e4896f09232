"""examples/trec end to end on the scripted engine: compile, forward on real rows, score,
backward on the failures, one optimizer step through the real Trainer.

The scripted task model labels every question right except NUM questions, which it calls
DESC unless the instruction states RULE; the backward engine names the rule, the
optimizer writes it in.
"""

from __future__ import annotations

import asyncio

import pytest
from example_script import EXAMPLES, Brain, rows

from promptc.compiler import compile_file
from promptc.optim.backward import backward
from promptc.optim.trainer import Trainer
from promptc.runtime.engine import make_engine
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import run_forward

RULE = "Questions asking how many, how much, when or what year want NUM."
GOLD = {r["question"]: r["label"] for split in ("train", "val", "test") for r in rows("trec", split)}


def task(system: str, user: str) -> str:
    question = user.removeprefix("Question: ").strip()
    gold = GOLD.get(question, "DESC")
    if gold == "NUM" and RULE not in system:
        return "DESC"
    return gold


def pick(split: str, n_num: int, n_other: int) -> list[dict]:
    data = rows("trec", split)
    num = [r for r in data if r["label"] == "NUM"][:n_num]
    other = [r for r in data if r["label"] != "NUM"][:n_other]
    return num + other


@pytest.fixture
def brain(monkeypatch):
    b = Brain("ex_trec", task, RULE)
    b.register(monkeypatch)
    return b


def test_forward_backward_and_one_step(brain, tmp_path):
    program = compile_file(EXAMPLES / "trec" / "trec.pflow")
    assert {p.name for p in program.trainable()} == {"instruction", "answer_format", "shots"}
    engine = make_engine(cache_dir=tmp_path / "cache")

    batch = pick("train", 2, 2)
    traces = run_forward(program, batch, engine)
    scores = score(program, traces, batch)
    assert [t.output for t in traces] == ["DESC", "DESC"] + [r["label"] for r in batch[2:]]
    assert scores == [0.0, 0.0, 1.0, 1.0]
    grads = asyncio.run(backward(program, traces, batch, scores, engine))
    assert grads.samples == (0, 1)  # selective: only the failing samples
    assert grads.calls == 2  # one llm node: one backward call per failing sample
    assert set(grads.params()) == {"instruction", "answer_format", "shots"}
    assert all(RULE in g.text for g in grads.for_param("instruction"))
    # the backward engine saw the metric's verdict on the failing sample
    assert "Expected: NUM\nGot: DESC" in brain.backward_prompts[0]

    train, val = pick("train", 3, 3), pick("val", 3, 3)
    result = Trainer(
        program, train, val, engine, steps=1, batch_size=4, proposals=1, run_dir=tmp_path / "run", seed=0
    ).fit()
    assert result.start_val == 0.5 and result.best_val == 1.0
    # a demo search, the prompt step, and a demo search again after the accepted instruction
    assert [h["kind"] for h in result.history] == ["demos", "prompts", "demos"]
    assert "instruction" in result.history[1]["accepted"]
    assert RULE in result.program.param("instruction").text
    # the optimizer saw the peers of `instruction`: the answer format and the demos
    prompt = brain.optimizer_prompt_for("instruction")[0]
    assert "`answer_format` (role: how the answer must be written)" in prompt
    assert "`shots` (few-shot examples" in prompt
    assert (tmp_path / "run" / "trec.pfc").exists() and (tmp_path / "run" / "report.html").exists()
