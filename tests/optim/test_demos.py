"""The demo optimizer: where demos come from (labeled rows, successful traces, the
teacher), candidate sets that cover the labels, and the race that picks among them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from attrs import evolve

from promptc.compiler import compile_file
from promptc.ir import Demo
from promptc.optim import demos as demo_opt, race as race_lib
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import forward
from tests.optim.helpers import Engine, trec_like

TREC = Path(__file__).resolve().parents[2] / "examples/trec/trec.pflow"
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


def trec_program():
    program = compile_file(str(TREC))
    return evolve(program, models=tuple(evolve(m, default="scripted/t", env=None) for m in program.models))


def test_collect_keeps_successes_and_the_teachers_right_answers():
    program = trec_like()
    program = evolve(program, train=evolve(program.train, teacher="scripted/teacher"))
    engine = Engine(answer)
    traces = asyncio.run(forward(program, BATCH, engine))
    scores = score(program, traces, BATCH)
    assert scores == [1.0, 0.0, 0.0]

    async def teacher_run(prog, rows):
        t = await forward(prog, rows, engine, phase="demos")
        return t, score(prog, t, rows)

    pool = asyncio.run(demo_opt.collect(program, "shots", [7, 8, 9], BATCH, traces, scores, demo_opt.Pool(),
                                        teacher_run=teacher_run))
    assert sum(1 for r in engine.requests if r.model == "scripted/teacher" and r.phase == "demos") == 2
    kept = {(dict(e.demo.inputs)["question"], e.demo.output, e.origin, e.row) for e in pool.entries}
    # the success from its trace; the teacher right on Rome only (wrong on Oslo: not kept)
    assert kept == {("Who wrote Hamlet?", "HUM", "trace", 7), ("Where is Rome?", "LOC", "teacher", 8)}


def test_no_teacher_when_it_is_the_task_model():
    program = trec_like()
    assert demo_opt.teacher_model(program) is None
    program = evolve(program, train=evolve(program.train, teacher="task"))
    assert demo_opt.teacher_model(program) is None


def test_failing_samples_become_labeled_demos_where_the_llm_gives_the_output():
    program = trec_program()
    batch = [{"question": q, "label": a} for q, a in
             [("Who wrote Hamlet?", "HUM"), ("Where is Rome?", "LOC"), ("What is an atom?", "DESC")]]
    engine = Engine(lambda req: "HUM")
    traces = asyncio.run(forward(program, batch, engine))
    scores = score(program, traces, batch)
    assert scores == [1.0, 0.0, 0.0]
    pool = asyncio.run(demo_opt.collect(program, "shots", [0, 1, 2], batch, traces, scores, demo_opt.Pool()))
    kept = {(dict(e.demo.inputs)["question"], e.demo.output, e.origin) for e in pool.entries}
    assert kept == {("Who wrote Hamlet?", "HUM", "trace"), ("Where is Rome?", "LOC", "labeled"),
                    ("What is an atom?", "DESC", "labeled")}


def test_labeled_demos_cost_no_call_where_the_output_node_reads_inputs():
    program = trec_program()
    train = [{"question": f"q{i}", "label": lab} for i, lab in enumerate(["HUM", "LOC", "NUM", "HUM"])]
    entries = demo_opt.free_labeled(program, "shots", train + [{"question": "no label"}])
    assert [(dict(e.demo.inputs)["question"], e.demo.output, e.row) for e in entries] == [
        ("q0", "HUM", 0), ("q1", "LOC", 1), ("q2", "NUM", 2), ("q3", "HUM", 3)]
    # an llm whose output goes through a function first is not the workflow's output: no free demos
    assert demo_opt.free_labeled(trec_like(), "shots", [{"question": "q", "answer": "HUM"}]) == []


def test_labeled_demos_fill_the_one_field_record_the_workflow_answers_with():
    program = compile_file(str(TREC.parents[1] / "object_counting/object_counting.pflow"))
    rows = [{"input": "I have a cat and two dogs. How many animals?", "target": "3"}, {"input": "x", "target": "many"}]
    entries = demo_opt.free_labeled(program, "shots", rows)
    assert [(e.demo.output, e.row) for e in entries] == [({"answer": 3}, 0)]  # "many" is no int: no demo
    # the same rule for demos from a failing sample's trace
    (trace,) = asyncio.run(forward(program, [{"input": "one cat"}], Engine(lambda req: '{"answer": 7}')))
    assert [d.output for d in demo_opt.labeled_demos(program, "shots", trace, "1")] == [{"answer": 1}]


def _pool(labels_per_row):
    return demo_opt.Pool(tuple(
        demo_opt.PoolEntry(Demo((("question", f"q{i}"),), lab), "labeled", i) for i, lab in enumerate(labels_per_row)
    ))


def test_candidate_sets_cover_the_labels_and_include_the_current_set():
    labels = ("A", "B", "C")
    pool = _pool(["A"] * 10 + ["B"] * 3 + ["C"] * 2)
    current = race_lib.Choice((Demo((("question", "q0"),), "A"),))
    sets = race_lib.candidates(pool, current, 6, labels, 12, random.Random(1))
    assert sets[0] == current and sets[1] == race_lib.Choice()  # the incumbent, and no demos at all
    assert len(sets) == 12 and len({s.signature() for s in sets}) == 12
    # the pool is big enough (15 >= 2 x 6) for nearest-neighbour choices at 6 and 3
    assert [(s.nearest, len(s.demos)) for s in sets[2:4]] == [(6, 15), (3, 15)]
    fixed = sets[4:]
    assert {len(s.demos) for s in fixed} == {6, 3}  # the max, and one per label (= half of 6)
    for s in fixed:
        outs = [d.output for d in s.demos]
        assert s.nearest == 0 and set(outs) == set(labels)  # every label is shown
        assert max(outs.count(x) for x in labels) - min(outs.count(x) for x in labels) <= 1


def test_context_window_caps_the_set_size():
    pool = demo_opt.Pool(tuple(
        demo_opt.PoolEntry(Demo((("question", "x" * 300),), "A"), "labeled", i) for i in range(8)))
    sets = race_lib.candidates(pool, race_lib.Choice(), 8, ("A",), 4, random.Random(0), context=500)
    assert max(s.nearest or len(s.demos) for s in sets) == 2  # ~112 tokens a demo, half of 500 holds 2


def test_the_race_finds_the_best_set_and_never_scores_a_set_on_its_own_rows():
    pool = _pool(["A", "B"] * 20)
    sets = race_lib.candidates(pool, race_lib.Choice(), 4, ("A", "B"), 12, random.Random(3))
    good = sets[7]  # pretend this one fixed set is much better than the rest
    assert good.nearest == 0
    seen: list[tuple[race_lib.Choice, list[int]]] = []

    async def evaluate(choice, rows):
        seen.append((choice, rows))
        return [1.0 if choice == good else (0.5 if r % 3 else 0.0) for r in rows]

    order = list(range(40))
    random.Random(0).shuffle(order)
    result = asyncio.run(race_lib.race(sets, pool, order, 4, evaluate))
    assert result.winner == good and not result.is_current
    for choice, rows in seen:
        if not choice.nearest:
            assert not set(rows) & pool.rows(choice.demos)
    assert result.calls_rows == sum(len(r) for _, r in seen) <= race_lib.halving_cost(12, 4, 36)


def test_the_current_set_wins_ties():
    pool = _pool(["A", "B"] * 10)
    sets = race_lib.candidates(pool, race_lib.Choice(), 2, ("A", "B"), 6, random.Random(0))

    async def evaluate(choice, rows):
        return [0.5] * len(rows)

    result = asyncio.run(race_lib.race(sets, pool, list(range(20)), 2, evaluate))
    assert result.is_current and result.winner == race_lib.Choice()


def test_race_plans_fit_the_budget():
    assert race_lib.plan(None, 50) == race_lib.plan(race_lib.UNBOUNDED_RACE_CALLS, 50)
    for budget in (30, 80, 160, 400):
        count, first = race_lib.plan(budget, 50)
        assert race_lib.halving_cost(count, first, 50) <= budget
    assert race_lib.plan(160, 50) == (8, 8)  # 160 calls: 8 sets, the first cut on 8 rows
    assert race_lib.plan(400, 50)[0] >= 12  # more calls: more sets
    assert race_lib.plan(5, 50) is None
    # a workflow with three calls per row gets fewer candidates for the same budget
    count, first = race_lib.plan(160, 50, 3.0)
    assert race_lib.halving_cost(count, first, 50, 3.0) <= 160 and (count, first) != race_lib.plan(160, 50)


def test_nearest_demos_are_chosen_per_call_and_never_the_question_itself():
    from promptc.runtime.nearest import pool_order, select

    pool = tuple(Demo((("question", q),), lab) for q, lab in [
        ("How many legs does a spider have?", "NUM"), ("Who wrote Hamlet?", "HUM"),
        ("Where is the Eiffel Tower?", "LOC"), ("How many moons does Mars have?", "NUM"),
        ("Who painted the Mona Lisa?", "HUM")])
    got = select(pool, {"question": "How many wheels does a bicycle have?"}, 4)
    questions = [dict(d.inputs)["question"] for d in got]
    # each label's nearest first (NUM, HUM, LOC), then the nearest other: the second NUM
    assert len(questions) == 4 and {d.output for d in got} == {"NUM", "HUM", "LOC"}
    assert {"How many legs does a spider have?", "How many moons does Mars have?"} <= set(questions)
    rank = pool_order(pool, 4)  # shown in the pool's fixed order (shared prompt prefixes)
    assert [rank[pool.index(d)] for d in got] == sorted(rank[pool.index(d)] for d in got)
    got = select(pool, {"question": "Who wrote Hamlet?"}, 2)
    assert "Who wrote Hamlet?" not in {dict(d.inputs)["question"] for d in got}
    assert "Who painted the Mona Lisa?" in {dict(d.inputs)["question"] for d in got}
    # free-text outputs (all different): simply the nearest
    texts = tuple(Demo((("q", f"alpha beta {i}"),), f"out {i}") for i in range(3)) + (Demo((("q", "gamma"),), "x"),)
    assert [d.output for d in select(texts, {"q": "alpha beta 1"}, 2)] == ["out 0", "out 2"]  # never "gamma"


def test_a_nearest_pool_renders_per_call_and_survives_the_artifact(tmp_path):
    from promptc import artifact
    from promptc.runtime.render import render_messages

    program = trec_program()
    pool = tuple(Demo((("question", q),), lab) for q, lab in [
        ("How many legs does a spider have?", "NUM"), ("Who wrote Hamlet?", "HUM"),
        ("Where is Paris?", "LOC"), ("What is an atom?", "DESC")])
    program = program.with_param(race_lib.Choice(pool, 1).of(program.param("shots")))
    msgs = render_messages(program, program.llm("classify"), {"question": "Where is Rome?"})
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == ["LOC"]
    artifact.save(program, tmp_path / "t.pfc")
    loaded, _ = artifact.load_artifact(tmp_path / "t.pfc")
    assert loaded.param("shots").nearest == 1 and loaded.param("shots").demos == pool


def test_a_paired_race_draws_fixed_sets_from_the_rows_it_does_not_race_on():
    pool = _pool(["A", "B"] * 20)
    order = list(range(40))
    random.Random(2).shuffle(order)
    race_rows, draw_from = race_lib.split_rows(order, pool)
    assert race_rows == order[:20] and {e.row for e in draw_from.entries} == set(order[20:])
    sets = race_lib.candidates(pool, race_lib.Choice(), 4, ("A", "B"), 10, random.Random(0), draw_from=draw_from)
    for s in sets:
        if s.nearest:
            assert len(s.demos) == 40  # a nearest pool keeps every demo
        else:
            assert not pool.rows(s.demos) & set(race_rows)
    # too few rows for two halves: the race uses all of them, each fixed set skips its own
    assert race_lib.split_rows(order[:10], pool) == (order[:10], None)


def test_a_value_the_gate_refused_is_not_raced_again():
    pool = _pool(["A", "B"] * 10)
    first = race_lib.candidates(pool, race_lib.Choice(), 2, ("A", "B"), 6, random.Random(0))
    refused = first[3]
    again = race_lib.candidates(pool, race_lib.Choice(), 2, ("A", "B"), 6, random.Random(0), exclude={refused.key()})
    assert refused not in again and len(again) == 6
