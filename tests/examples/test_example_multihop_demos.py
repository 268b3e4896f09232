"""examples/multihop learns from demos: the demo search covers its two demos params in turn.

The scripted task model never finds a gold passage (its query has no word of the corpus)
and answers "unknown" unless the answer prompt shows it a worked example (a demo turn
before the question): then it answers right. So the only way up is a demo of the answer
step — a labeled one, built from a failing trace's question and notes with the gold
answer, since no trace ever succeeds before it. The query step's demos come only from
hops whose passage is a gold one (`supports found in supporting_titles`): with a query
that matches no word, BM25 returns a row's first paragraph, gold for a few rows; those
demos do not change what this model writes, so every candidate retrieves as well as no
demos at all and the current (empty) set keeps winning its race.
"""

from __future__ import annotations

import re

from example_script import EXAMPLES, rows

from promptc.compiler import compile_file
from promptc.optim.trainer import Trainer
from promptc.runtime import scripted
from promptc.runtime.engine import make_engine

ALL = {r["question"]: r for split in ("train", "val", "test") for r in rows("multihop", split)}


def task(messages: list[dict]) -> str:
    user = messages[-1]["content"]
    m = re.match(r"Question: (.*?)\nNotes:\n(.*?)\n(?:Passages:\n(.*)\n)?(Search query|Updated notes|Answer):$", user, re.S)
    question, notes, evidence, what = m.groups()
    if what == "Search query":
        return "qqqq"
    if what == "Updated notes":
        return "nothing found"
    shown = [x for x in messages[1:-1] if x["role"] == "assistant"]  # demo turns
    return ALL[question]["answer"] if shown else "unknown"


def test_the_answer_step_learns_labeled_demos_from_failing_traces(monkeypatch, tmp_path):
    model = scripted.register("ex_multihop_demos", task)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", model)
    monkeypatch.setenv("PROMPTC_TEACHER_MODEL", model)
    program = compile_file(EXAMPLES / "multihop" / "multihop.pflow")
    assert [p.name for p in program.params if p.kind == "demos"] == ["query_shots", "answer_shots"]
    train, val = rows("multihop", "train")[:20], rows("multihop", "val")[:4]
    engine = make_engine(cache_dir=tmp_path / "cache")
    result = Trainer(
        program, train, val, engine, steps=0, batch_size=4, proposals=1, run_dir=tmp_path / "run", seed=0,
    ).fit()
    assert result.start_val == 0.0 and result.best_val == 1.0
    first = result.history[0]
    assert first["kind"] == "demos"
    by_param = {p["param"]: p for p in first["proposals"]}
    # both demos params had their turn in the one demo round
    assert set(by_param) == {"query_shots", "answer_shots"}
    query = by_param["query_shots"]
    assert not query["accepted"] and query["reason"] == "the current demo set won the race"
    assert query["race"]["decided_by"] == "mean"  # recorded, typed: the current value keeps winning ties
    assert by_param["answer_shots"]["accepted"]
    demos = result.program.param("answer_shots").demos
    assert demos and all(dict(d.inputs)["notes"] == "nothing found" for d in demos)
    # every demo is a training row's question with its gold answer (labeled, not made up)
    gold = {r["question"]: r["answer"] for r in train}
    assert all(gold[dict(d.inputs)["question"]] == d.output for d in demos)
    assert result.program.param("query_shots").demos == ()
