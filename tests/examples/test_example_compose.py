"""examples/compose end to end on the scripted engine: `compose.pflow` imports the
multi-hop retrieval of `retrieve.pflow` (`use "retrieve.pflow" { multihop_retrieve }`),
which the inline pass copies in; its params are trained under qualified names and saved
in the caller's artifact.

The scripted model is the one of the multihop test: a good search query only when the
query instruction states RULE, notes that copy the passages, the gold answer when the
notes hold it.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from example_script import EXAMPLES, Brain, rows
from test_example_multihop import RULE, task, usable

from promptc.artifact import load_program
from promptc.compiler import compile_file
from promptc.optim.backward import backward
from promptc.optim.trainer import Trainer
from promptc.printer import format_backward
from promptc.runtime.engine import make_engine
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import run_forward

QUERY = "multihop_retrieve.query_instruction"


@pytest.fixture
def brain(monkeypatch):
    b = Brain("ex_compose", task, RULE)
    b.register(monkeypatch)
    return b


def test_imported_params_are_qualified_and_shown_by_the_backward_program():
    program = compile_file(EXAMPLES / "compose" / "compose.pflow")
    assert [p.name for p in program.trainable()] == [
        "answer_instruction", QUERY, "multihop_retrieve.notes_instruction"
    ]
    # the imported llms read their own params through their namespace
    assert program.llm("multihop_retrieve.make_query").uses == (QUERY,)
    back = format_backward(program)
    assert re.search(r"grad %multihop_retrieve\.q@hop#1: llm -> multihop_retrieve\.query_instruction", back)
    # the inlined nodes keep their source: retrieve.pflow
    assert program.node("multihop_retrieve.q@hop#0").span.file.endswith("retrieve.pflow")


def test_gradients_reach_the_imported_query_instruction_and_training_saves_it(brain, tmp_path):
    program = compile_file(EXAMPLES / "compose" / "compose.pflow")
    engine = make_engine(cache_dir=tmp_path / "cache")
    train = [r for r in rows("multihop", "train") if usable(r)][:4]
    val = [r for r in rows("multihop", "val") if usable(r)][:4]

    batch = train[:2]
    traces = run_forward(program, batch, engine)
    scores = score(program, traces, batch)
    assert scores == [0.0, 0.0] and [t.output for t in traces] == ["unknown", "unknown"]
    # the query prompt the model saw is the imported param's text
    assert program.param(QUERY).text in brain.task_prompts[0][0]
    grads = asyncio.run(backward(program, traces, batch, scores, engine))
    assert set(grads.params()) == {"answer_instruction", QUERY, "multihop_retrieve.notes_instruction"}
    for _sample, gs in grads.by_sample(QUERY).items():
        assert [(g.node, g.step) for g in gs] == [("multihop_retrieve.q@hop#0", 0), ("multihop_retrieve.q@hop#1", 1)]
        assert all(RULE in g.text for g in gs)
    # on the way to the query, the feedback went through the imported retriever
    query_prompts = [p for p in brain.backward_prompts if "step `multihop_retrieve.q@hop#" in p]
    assert len(query_prompts) == 4
    assert all("[through `multihop_retrieve.retrieve`: Ranks the documents" in p for p in query_prompts)

    run = tmp_path / "run"
    result = Trainer(program, train, val, engine, steps=1, batch_size=4, proposals=1, run_dir=run, seed=0).fit()
    assert result.start_val == 0.0 and result.best_val == 1.0
    assert result.history[0]["accepted"][0] == QUERY
    assert RULE in result.program.param(QUERY).text
    assert brain.optimizer_prompt_for(QUERY)
    # the caller's artifact holds the trained, qualified param
    saved = load_program(run / "compose.pfc")
    assert RULE in saved.param(QUERY).text
    # and the report shows it under that name
    assert QUERY in (run / "report.html").read_text(encoding="utf-8")
