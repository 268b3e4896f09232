"""The demo optimizer: demos from successful traces, hard demos from a teacher on the
failing samples (kept only when the teacher is right), and the proposed set."""

from __future__ import annotations

import asyncio
import random

from attrs import evolve

from promptc.optim import demos as demo_opt
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import forward
from tests.optim.helpers import Engine, trec_like

BATCH = [
    {"question": "Who wrote Hamlet?", "answer": "HUM"},
    {"question": "Where is Rome?", "answer": "LOC"},
    {"question": "Where is Oslo?", "answer": "LOC"},
]


def answer(req):
    q = req.messages[-1]["content"]
    if req.model == "scripted/teacher":
        return "LOC" if "Rome" in q else "HUM"  # right on Rome, wrong on Oslo
    return "HUM"


def test_collect_and_propose_set():
    program = trec_like()
    program = evolve(program, train=evolve(program.train, teacher="scripted/teacher"))
    engine = Engine(answer)
    traces = asyncio.run(forward(program, BATCH, engine))
    scores = score(program, traces, BATCH)
    assert scores == [1.0, 0.0, 0.0]
    pool: list[dict] = []
    ran = asyncio.run(demo_opt.collect(program, "shots", BATCH, traces, scores, engine, pool,
                                       forward=forward, score=score))
    assert ran == 2  # the teacher reran the two failing samples
    assert sum(1 for r in engine.requests if r.model == "scripted/teacher" and r.phase == "demos") == 2
    kept = {(dict(e["demo"]["inputs"])["question"], e["demo"]["output"], e["hard"]) for e in pool}
    assert kept == {("Who wrote Hamlet?", "HUM", False), ("Where is Rome?", "LOC", True)}
    chosen = demo_opt.propose_set(program.param("shots"), pool, random.Random(0))
    assert chosen is not None and len(chosen) == 2
    assert dict(chosen[0].inputs)["question"] == "Where is Rome?"  # the hard one first
    # the same set again proposes nothing
    assert demo_opt.propose_set(evolve(program.param("shots"), demos=chosen), pool, random.Random(0)) is None


def test_no_teacher_when_it_is_the_task_model():
    program = trec_like()
    assert demo_opt.teacher_model(program) is None
    program = evolve(program, train=evolve(program.train, teacher="task"))
    assert demo_opt.teacher_model(program) is None


def test_failing_samples_become_labeled_demos_where_the_llm_gives_the_output():
    from pathlib import Path

    from promptc.compiler import compile_file

    program = compile_file(str(Path(__file__).resolve().parents[2] / "examples/trec/trec.pflow"))
    batch = [{"question": q, "label": a} for q, a in
             [("Who wrote Hamlet?", "HUM"), ("Where is Rome?", "LOC"), ("What is an atom?", "DESC")]]
    program = evolve(program, models=tuple(evolve(m, default="scripted/t", env=None) for m in program.models))
    engine = Engine(lambda req: "HUM")
    traces = asyncio.run(forward(program, batch, engine))
    scores = score(program, traces, batch)
    assert scores == [1.0, 0.0, 0.0]
    pool: list[dict] = []
    asyncio.run(demo_opt.collect(program, "shots", batch, traces, scores, engine, pool))
    kept = {(dict(e["demo"]["inputs"])["question"], e["demo"]["output"], e["hard"]) for e in pool}
    # the success as an ordinary demo, each failure with its expected label as a hard one
    assert kept == {("Who wrote Hamlet?", "HUM", False), ("Where is Rome?", "LOC", True),
                    ("What is an atom?", "DESC", True)}
