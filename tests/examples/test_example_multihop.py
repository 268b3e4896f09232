"""examples/multihop end to end on the scripted engine: compile, forward on real HotpotQA
rows (two hops of query -> BM25 retrieve -> notes, then answer), score with F1, backward
on the failures, one optimizer step through the real Trainer.

The scripted task model writes a good search query (the title of the next supporting
paragraph) only when `query_instruction` states RULE; otherwise its query has no word in
the corpus and BM25 returns the first paragraph, which (for the rows chosen) holds no
answer. Its notes copy the passages; its answer is the gold answer when the notes
contain it. So the only way to a right answer is through the retriever: the test checks
that the gradients reach `query_instruction` through `retrieve`, at both hops, and that
the optimizer sees them in time order.
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
from promptc.stdlib.retrieval import passages

RULE = "Search for the exact title of the next paragraph the question needs."
ALL = {r["question"]: r for split in ("train", "val", "test") for r in rows("multihop", split)}


def usable(r: dict) -> bool:
    """The answer is in a supporting paragraph and not in the first one (the no-rule hit)."""
    docs = dict(zip((t for t, _ in r["context"]), passages(r["context"])))
    ans = r["answer"].lower()
    first = r["context"][0][0]
    return (
        first not in r["supporting_titles"]
        and ans not in docs[first].lower()
        and any(ans in docs[t].lower() for t in r["supporting_titles"] if t in docs)
    )


def task(system: str, user: str) -> str:
    m = re.match(r"Question: (.*?)\nNotes:\n(.*?)\n(?:Passages:\n(.*)\n)?(Search query|Updated notes|Answer):$", user, re.S)
    question, notes, evidence, what = m.groups()
    row = ALL[question]
    if what == "Search query":
        if RULE not in system:
            return "qqqq"
        return row["supporting_titles"][0 if not notes.strip() else 1]
    if what == "Updated notes":
        return (notes + "\n" + evidence).strip()
    return row["answer"] if row["answer"].lower() in notes.lower() else "unknown"


@pytest.fixture
def brain(monkeypatch):
    b = Brain("ex_multihop", task, RULE)
    b.register(monkeypatch)
    return b


def test_gradients_reach_the_query_through_the_retriever_in_time_order(brain, tmp_path):
    program = compile_file(EXAMPLES / "multihop" / "multihop.pflow")
    engine = make_engine(cache_dir=tmp_path / "cache")
    train = [r for r in rows("multihop", "train") if usable(r)][:4]
    val = [r for r in rows("multihop", "val") if usable(r)][:4]
    assert len(train) == 4 and len(val) == 4

    batch = train[:2]
    traces = run_forward(program, batch, engine)
    scores = score(program, traces, batch)
    assert scores == [0.0, 0.0] and [t.output for t in traces] == ["unknown", "unknown"]
    # two hops ran, each with its own query and retrieval
    names = [r.name for r in traces[0].records]
    assert {"q@hop#0", "found@hop#0", "q@hop#1", "found@hop#1"} <= set(names)

    grads = asyncio.run(backward(program, traces, batch, scores, engine))
    assert grads.samples == (0, 1)
    # the demos params of the query and answer steps get gradients too (the demo optimizer ignores them)
    assert set(grads.params()) == {"query_instruction", "notes_instruction", "answer_instruction", "query_shots", "answer_shots"}
    for sample, gs in grads.by_sample("query_instruction").items():
        # one gradient per hop, in time order, each through the retriever
        assert [(g.node, g.step) for g in gs] == [("q@hop#0", 0), ("q@hop#1", 1)]
        assert all("through join, retrieve" in g.text and RULE in g.text for g in gs)
    # the backward engine was shown the retriever's name and docstring on the way to the query
    query_prompts = [p for p in brain.backward_prompts if "step `q@hop#" in p]
    assert len(query_prompts) == 4
    assert all("[through `retrieve`: Ranks the documents of `corpus` by BM25" in p for p in query_prompts)
    # one sample's walk: the answer node first (reverse order), then hop 1, then hop 0
    mine = [p for p in brain.backward_prompts if batch[0]["question"] in p]
    order = [re.search(r"step `([^`]+)`", p).group(1) for p in mine]
    assert order == ["t4", "notes.2@hop#1", "q@hop#1", "notes.2@hop#0", "q@hop#0"]

    result = Trainer(
        program, train, val, engine, steps=1, batch_size=4, proposals=1, run_dir=tmp_path / "run", seed=0
    ).fit()
    assert result.start_val == 0.0 and result.best_val == 1.0
    # the demo search runs first and finds nothing to add (no demo makes this model right);
    # the prompt step then fixes the query
    assert [h["kind"] for h in result.history][:2] == ["demos", "prompts"]
    assert result.history[0]["accepted"] == []
    assert result.history[1]["accepted"][0] == "query_instruction"
    assert RULE in result.program.param("query_instruction").text
    prompt = brain.optimizer_prompt_for("query_instruction")[0]
    first = prompt.split("Example 1:", 1)[1].split("Example 2:", 1)[0]
    assert first.index("step 0 (at `q@hop#0`)") < first.index("step 1 (at `q@hop#1`)")
    assert "through join, retrieve" in first


def test_the_metric_explains_the_loss_with_the_missing_gold_words(brain, tmp_path):
    program = compile_file(EXAMPLES / "multihop" / "multihop.pflow")
    engine = make_engine(cache_dir=tmp_path / "cache")
    row = [r for r in rows("multihop", "train") if usable(r)][0]
    traces = run_forward(program, [row], engine)
    (s,) = score(program, traces, [row])
    assert s == 0.0 and s.feedback.startswith("Token F1 0.00: the answer lacks the expected word(s): ")
    grads = asyncio.run(backward(program, traces, [row], [s], engine))
    ((_i, loss),) = grads.losses
    assert f"Got: unknown\nThe metric explains: {s.feedback}" in loss
    # the explanation reached the backward engine with the loss, at the answer step
    assert s.feedback in brain.backward_prompts[0]
