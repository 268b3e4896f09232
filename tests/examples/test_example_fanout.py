"""examples/fanout end to end on the scripted engine: retrieve three passages, summarise
each with the same llm (`for passage in found max 3`), answer from the summaries; backward
on the failures; one optimizer step through the real Trainer.

The scripted summariser keeps the passage only when `summary_instruction` states RULE
(otherwise it says "nothing relevant"); the answerer gives the gold answer when a summary
contains it. So the only way to a right answer is through the per-passage prompt: the test
checks that its gradients arrive from every passage, in step order, and that a question
with fewer passages runs fewer steps.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from example_script import EXAMPLES, Brain, rows

from promptc.compiler import compile_file
from promptc.optim.backward import backward
from promptc.optim.trainer import Trainer
from promptc.runtime.engine import make_engine
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import run_forward
from promptc.stdlib.retrieval import passages, retrieve

RULE = "Copy the passage sentence that names the answer word for word."
ALL = {r["question"]: r for split in ("train", "val", "test") for r in rows("multihop", split)}


def task(system: str, user: str) -> str:
    m = re.match(r"Question: (.*?)\n(?:Passage: (.*)\nSummary|Summaries:\n(.*)\nAnswer):$", user, re.S)
    question, passage, summaries = m.groups()
    if passage is not None:
        return passage if RULE in system else "nothing relevant"
    gold = ALL[question]["answer"]
    return gold if gold.lower() in summaries.lower() else "unknown"


def usable(r: dict) -> bool:
    """The answer is in one of the three passages the question retrieves."""
    found = retrieve(r["question"], passages(r["context"]), 3)
    return any(r["answer"].lower() in p.lower() for p in found)


@pytest.fixture
def brain(monkeypatch):
    b = Brain("ex_fanout", task, RULE)
    b.register(monkeypatch)
    return b


def test_gradients_reach_the_per_passage_prompt_from_every_passage_in_order(brain, tmp_path):
    program = compile_file(EXAMPLES / "fanout" / "fanout.pflow")
    engine = make_engine(cache_dir=tmp_path / "cache")
    train = [r for r in rows("multihop", "train") if usable(r)][:4]
    val = [r for r in rows("multihop", "val") if usable(r)][:4]
    assert len(train) == 4 and len(val) == 4

    short = dict(train[1], context=train[1]["context"][:2])  # two paragraphs: two steps
    batch = [train[0], short]
    traces = run_forward(program, batch, engine)
    assert [t.output for t in traces] == ["unknown", "unknown"]
    ran = [[r.name for r in t.records if r.executed and r.name.startswith("t3@")] for t in traces]
    assert ran == [["t3@passage#0", "t3@passage#1", "t3@passage#2"], ["t3@passage#0", "t3@passage#1"]]
    assert [r.executed for r in traces[1].records if r.name == "t3@passage#2"] == [False]
    scores = score(program, traces, batch)
    assert scores == [0.0, 0.0]

    grads = asyncio.run(backward(program, traces, batch, scores, engine))
    by = grads.by_sample("summary_instruction")
    assert [(g.node, g.step) for g in by[0]] == [("t3@passage#0", 0), ("t3@passage#1", 1), ("t3@passage#2", 2)]
    assert [(g.node, g.step) for g in by[1]] == [("t3@passage#0", 0), ("t3@passage#1", 1)]
    assert all(RULE in g.text for g in by[0] + by[1])
    # the backward engine saw each passage's own summary step, with its time index
    asked = [p for p in brain.backward_prompts if "step `t3@passage#" in p and batch[0]["question"] in p]
    assert [re.search(r"step `(t3@passage#\d)`", p).group(1) for p in asked] == [
        "t3@passage#2", "t3@passage#1", "t3@passage#0"
    ]  # the reverse walk: the last step first

    result = Trainer(
        program, train, val, engine, steps=1, batch_size=4, proposals=1, run_dir=tmp_path / "run", seed=0
    ).fit()
    assert result.start_val == 0.0 and result.best_val == 1.0
    assert result.history[0]["accepted"][0] == "summary_instruction"
    assert RULE in result.program.param("summary_instruction").text
    prompt = brain.optimizer_prompt_for("summary_instruction")[0]
    first = prompt.split("Example 1:", 1)[1].split("Example 2:", 1)[0]
    assert first.index("step 0 (at `t3@passage#0`)") < first.index("step 1 (at `t3@passage#1`)") < first.index(
        "step 2 (at `t3@passage#2`)"
    )
