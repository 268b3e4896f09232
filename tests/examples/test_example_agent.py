"""examples/agent (ReAct, `loop max 5`) end to end on the scripted engine: compile,
forward on real HotpotQA rows, score with F1, backward through the unrolled loop steps,
one optimizer step through the real Trainer.

The scripted agent searches for the next supporting paragraph's title only when the
instruction states RULE; otherwise its searches have no word in the corpus (BM25 then
returns the first paragraph, which for the rows chosen holds no answer) and it gives up
at step 2. It finishes with the gold answer as soon as an observation contains it. The
test checks that the instruction's gradients come from every step that ran, in time
order, and that feedback reached the earlier steps through the `act` tool.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from example_script import EXAMPLES, Brain, rows

from promptc.compiler import compile_file
from promptc.optim.backward import backward
from promptc.optim.trainer import Trainer
from promptc.runtime.engine import make_engine
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import run_forward
from promptc.stdlib.agents import search
from promptc.stdlib.retrieval import passages

RULE = "Search for the exact title of the paragraph that holds the next fact."
ALL = {r["question"]: r for split in ("train", "val", "test") for r in rows("multihop", split)}


def usable(r: dict) -> bool:
    """The first paragraph holds no answer; a title search finds the answer in two searches."""
    corpus = passages(r["context"])
    ans = r["answer"].lower()
    if ans in corpus[0].lower() or r["context"][0][0] in r["supporting_titles"]:
        return False
    return any(ans in search(t, corpus).lower() for t in r["supporting_titles"][:2])


def task(system: str, user: str) -> str:
    m = re.match(r"Question: (.*?)\n\nHistory:\n(.*?)\n\nNext step:", user, re.S)
    question, history = m.groups()
    row = ALL[question]
    n = history.count("Observation:")
    if row["answer"].lower() in history.lower():
        step = {"thought": "The history holds the answer.", "action": "finish", "arg": row["answer"]}
    elif n < 2:
        arg = row["supporting_titles"][n] if RULE in system else "qqqq"
        step = {"thought": "I need another fact.", "action": "search", "arg": arg}
    else:
        step = {"thought": "I cannot find it.", "action": "finish", "arg": "unknown"}
    return json.dumps(step)


@pytest.fixture
def brain(monkeypatch):
    b = Brain("ex_agent", task, RULE)
    b.register(monkeypatch)
    return b


def test_gradients_arrive_through_the_loop_steps_in_time_order(brain, tmp_path):
    program = compile_file(EXAMPLES / "agent" / "react.pflow")
    engine = make_engine(cache_dir=tmp_path / "cache")
    train = [r for r in rows("multihop", "train") if usable(r)][:4]
    val = [r for r in rows("multihop", "val") if usable(r)][:4]
    assert len(train) == 4 and len(val) == 4

    batch = train[:2]
    traces = run_forward(program, batch, engine)
    scores = score(program, traces, batch)
    assert scores == [0.0, 0.0] and [t.output for t in traces] == ["unknown", "unknown"]
    # three steps ran (search, search, finish); the break guards the last two
    ran = [r.name for r in traces[0].records if r.name.startswith("step@") and r.executed]
    assert ran == ["step@step#0", "step@step#1", "step@step#2"]
    assert not traces[0].record("step@step#3").executed

    grads = asyncio.run(backward(program, traces, batch, scores, engine))
    assert grads.samples == (0, 1)
    assert set(grads.params()) == {"instruction", "tool_descriptions", "step_shots"}
    for sample, gs in grads.by_sample("instruction").items():
        # one gradient per step that ran, in time order (the walk went 2, 1, 0)
        assert [(g.node, g.step) for g in gs] == [("step@step#0", 0), ("step@step#1", 1), ("step@step#2", 2)]
        # the earlier steps were reached through the observations of the `act` tool
        assert all("through act" in g.text for g in gs[:2]) and "through act" not in gs[2].text
    mine = [p for p in brain.backward_prompts if batch[0]["question"] in p]
    order = [re.search(r"step `([^`]+)`", p).group(1) for p in mine]
    assert order == ["step@step#2", "step@step#1", "step@step#0"]
    assert "(loop `step`, step 0)" in mine[2]
    assert "[through `act`: Runs the agent's chosen action" in mine[2]

    result = Trainer(
        program, train, val, engine, steps=1, batch_size=4, proposals=1, run_dir=tmp_path / "run", seed=0
    ).fit()
    assert result.start_val == 0.0 and result.best_val == 1.0
    # the demo search runs first: no trace has scored yet, so step_shots has no demo to offer
    assert result.history[0]["kind"] == "demos" and result.history[0]["accepted"] == []
    assert result.history[1]["accepted"][0] == "instruction"
    assert RULE in result.program.param("instruction").text
    prompt = brain.optimizer_prompt_for("instruction")[0]
    first = prompt.split("Example 1:", 1)[1].split("Example 2:", 1)[0]
    at = [first.index(f"step {k} (at `step@step#{k}`)") for k in range(3)]
    assert at == sorted(at)
    # the peer (tool descriptions) is shown read-only beside the instruction
    assert "`tool_descriptions` (role: what each action does" in prompt
