"""Credit for intermediate steps (`train { supports VALUE in FIELD }`, promptc.optim.credit):
which `llm` step a value credits, when a value hits a row's field, how a race scores a
credited step, and the `.pfc` round trip of the train block's new entry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from attrs import evolve

from promptc import artifact
from promptc.compiler import compile_file, compile_source
from promptc.ir import Demo
from promptc.optim import credit
from promptc.optim.demos import Pool, PoolEntry, collect
from promptc.runtime.records import NodeRecord, Trace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SRC = """
use std.retrieval { retrieve }
use std.text { join }
use std.metrics { f1 }
model m = "scripted/echo"
param shots: demos(max = 2) trainable
llm ask(question: text) -> text via m { demos shots, user "{question}" }
llm rewrite(q: text) -> text via m { user "{q}" }
llm answer(question: text, evidence: text) -> text via m { user "{question} {evidence}" }
workflow w(question: text, corpus: list[text]) -> text {
  let q = rewrite(ask(question))
  let found = retrieve(q, corpus, 1)
  let direct = retrieve(question, corpus, 1)
  if question == "x" {
    found = retrieve(ask(question), corpus, 2)
  }
  return answer(question, join(found, " ") + join(direct, " "))
}
train w { metric f1; supports found in gold; supports direct in gold }
"""


def test_a_value_credits_the_nearest_llm_steps_that_computed_it():
    p = compile_source(SRC, "w.pflow")
    got = {step: [(s.value, value) for s, value in pairs] for step, pairs in credit.credited(p).items()}
    # `found` = retrieve(rewrite(ask(q))): the rewrite, not the ask behind it; its
    # assignment in the branch, retrieve(ask(q)): that ask (`t5`); `direct` is computed
    # from the input alone: no step to credit
    assert got == {"q": [("found", "found")], "t5": [("found", "found.1")]}
    assert p.node("q").target == "rewrite" and p.node("t5").target == "ask"
    assert credit.uncredited(p) == ["direct"]


def test_the_agent_credits_each_step_by_its_observation():
    react = compile_file(EXAMPLES / "agent" / "react.pflow")
    got = {step: [v for _, v in pairs] for step, pairs in credit.credited(react).items()}
    # obs = act(step.action, step.arg, corpus): the `think` call of the same step (the last
    # step's observation is read by nothing: dead code, no credit)
    assert got == {f"step@step#{i}": [f"obs@step#{i}"] for i in range(4)}
    assert all(react.node(s).target == "think" for s in got)


@pytest.mark.parametrize("value, gold, hit", [
    (["Arrowhead Stadium: Arrowhead Stadium is a stadium in Kansas City."], ["Charles Deaton", "Arrowhead Stadium"], True),
    (["arrowhead stadium  :  text"], ["Arrowhead Stadium"], True),  # case and spaces do not matter
    (["Arrowhead Stadium Tour: text"], ["Arrowhead Stadium"], False),  # a longer title is another title
    (["Kauffman Stadium: home of the Arrowhead Stadium fans"], ["Arrowhead Stadium"], False),  # named in the body only
    ("Charles Deaton", "Charles Deaton", True),  # plain values and fields
    ([{"title": "Charles Deaton", "text": "..."}], ["Charles Deaton"], True),  # records by their title
    ([], ["Charles Deaton"], False),
    (["Charles Deaton: x"], [], False),
    (None, ["Charles Deaton"], False),
])
def test_hits(value, gold, hit):
    assert credit.hits(value, gold) is hit


def _trace(values: dict, skipped: tuple = ()) -> Trace:
    return Trace(inputs=(), records=tuple(
        NodeRecord(name, value=None if name in skipped else v, executed=name not in skipped) for name, v in values.items()
    ))


MULTIHOP = compile_file(EXAMPLES / "multihop" / "multihop.pflow")
ROW = {"question": "Q?", "answer": "76,416", "supporting_titles": ["Charles Deaton", "Arrowhead Stadium"]}


def _multihop_trace(first: str, second: str) -> Trace:
    return _trace({
        "question": "Q?", "notes": "", "q@hop#0": "Deaton stadium", "found@hop#0": [f"{first}: ..."],
        "notes.2@hop#0": "n0", "q@hop#1": "capacity", "found@hop#1": [f"{second}: ..."],
        "notes.2@hop#1": "n1", "t4": "wrong",
    })


def test_successes_and_race_scores_are_per_hop():
    trace = _multihop_trace("Charles Deaton", "Kauffman Stadium")
    assert credit.successes(credit.credited(MULTIHOP), trace, ROW) == {"q@hop#0"}
    nodes = ["q@hop#0", "q@hop#1"]
    twice = _multihop_trace("Charles Deaton", "Charles Deaton")
    traces = [trace, _multihop_trace("Arrowhead Stadium", "Charles Deaton"), twice, trace]
    rows = [ROW, ROW, ROW, {"question": "Q?", "answer": "x"}]  # the last row has no field: its own score
    # the recall of the row's two gold passages over both hops: the same passage twice is half
    assert credit.race_scores(MULTIHOP, nodes, traces, rows, [0.0, 0.2, 0.0, 0.7]) == [0.5, 1.0, 0.5, 0.7]
    assert credit.successes(credit.credited(MULTIHOP), twice, ROW) == {"q@hop#0", "q@hop#1"}
    # the answer step is not credited: its race compares the workflow's scores
    assert credit.race_scores(MULTIHOP, ["t4"], traces, rows, [0.0, 0.2, 0.0, 0.7]) == [0.0, 0.2, 0.0, 0.7]


def test_a_failing_sample_gives_the_credited_step_demos_and_nothing_else():
    trace = _multihop_trace("Kauffman Stadium", "Arrowhead Stadium")
    pool = Pool((PoolEntry(Demo((("question", "Q?"), ("notes", "n0")), "capacity"), "trace", 3),))

    async def go(program):
        return await collect(program, "query_shots", [3], [ROW], [trace], [0.0], Pool(), threshold=1.0)

    got = asyncio.run(go(MULTIHOP))
    # hop 1 hit, hop 0 did not: one demo, the query of hop 1 with its inputs
    assert [(e.demo, e.origin, e.row) for e in got.entries] == [
        (Demo((("question", "Q?"), ("notes", "n0")), "capacity"), "support", 3)
    ]
    # a trace entry of the same inputs is not replaced by a support one, nor the reverse by a trace one
    assert pool.add(got.entries).entries[0].origin == "trace"
    # without `supports`, the failing sample gives the query step nothing
    plain = evolve(MULTIHOP, train=evolve(MULTIHOP.train, supports=()))
    assert asyncio.run(go(plain)).entries == ()


def test_a_supports_field_no_training_row_has():
    assert credit.field_check(MULTIHOP, [ROW]) is None
    assert credit.field_check(MULTIHOP, [ROW, {"question": "Q?"}]) is None  # some rows may lack it
    err = credit.field_check(MULTIHOP, [{"question": "Q?", "answer": "a", "supporting": []}])
    assert err == ("train { supports found in supporting_titles }: no training row has the field "
                   "'supporting_titles' (the rows have answer, question, supporting)")


def test_the_pfc_keeps_supports_and_an_older_pfc_without_them_loads(tmp_path):
    path = tmp_path / "m.pfc"
    artifact.save(MULTIHOP, path)
    assert artifact.load_program(path) == MULTIHOP
    assert artifact.load_program(path).train.supports[0].nodes == ("found",)
    data = artifact.program_to_data(MULTIHOP)
    assert data["train"]["supports"]
    del data["train"]["supports"]  # what a .pfc written before `supports` holds
    old = artifact.program_from_data(data)
    assert old.train.supports == () and old.train.metric == "f1_explained"
    # a crafted entry with no field is refused by name
    bad = evolve(MULTIHOP, train=evolve(MULTIHOP.train, supports=(evolve(MULTIHOP.train.supports[0], field=""),)))
    artifact.save(bad, tmp_path / "bad.pfc")
    with pytest.raises(artifact.ArtifactError, match="train supports 'found' has no field"):
        artifact.load_program(tmp_path / "bad.pfc")


def test_the_decorated_twin_has_the_same_supports():
    import sys

    sys.path.insert(0, str(EXAMPLES.parent))
    try:
        from examples.multihop.multihop_workflow import multihop
    finally:
        sys.path.remove(str(EXAMPLES.parent))
    got = multihop.program.train.supports
    assert [(s.value, s.field, s.nodes) for s in got] == [("found", "supporting_titles", ("found",))]


def test_a_credited_race_runs_only_what_the_credit_needs():
    cut, share = credit.race_program(MULTIHOP, ["q@hop#0", "q@hop#1"], [ROW, ROW])
    llms = [n.name for n in cut.nodes if n.op == "llm"]
    # the query of both hops and the notes between them; not the last notes, not the answer
    assert llms == ["q@hop#0", "notes.2@hop#0", "q@hop#1"] and share == 3 / 5
    assert cut.workflow.output == "found@hop#1"
    assert credit.credited(cut) == credit.credited(MULTIHOP)
    # a row without the field is scored by the metric: the whole workflow runs
    assert credit.race_program(MULTIHOP, ["q@hop#0", "q@hop#1"], [ROW, {"question": "Q?"}]) is None
    assert credit.race_program(MULTIHOP, ["t4"], [ROW]) is None  # the answer step is not credited


def test_the_cut_program_runs_and_its_credit_is_the_full_programs(monkeypatch, tmp_path):
    from promptc.runtime import scripted
    from promptc.runtime.engine import make_engine
    from promptc.runtime.interpreter import run_forward

    calls = []

    def task(messages):
        calls.append(messages[-1]["content"].rsplit("\n", 1)[-1])
        return "Charles Deaton"

    model = scripted.register("credit_cut", task)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", model)
    program = compile_file(EXAMPLES / "multihop" / "multihop.pflow")
    row = dict(ROW, context=[["Kauffman Stadium", ["A stadium."]], ["Charles Deaton", ["An architect."]],
                             ["Arrowhead Stadium", ["Home of the Chiefs."]]])
    cut, _ = credit.race_program(program, ["q@hop#0", "q@hop#1"], [row])
    engine = make_engine(cache_dir=tmp_path / "c")
    (t,) = run_forward(cut, [row], engine)
    assert t.ok and calls == ["Search query:", "Updated notes:", "Search query:"]
    (full,) = run_forward(program, [row], engine)
    nodes = ["q@hop#0", "q@hop#1"]
    assert credit.race_scores(cut, nodes, [t], [row], [0.0]) == credit.race_scores(program, nodes, [full], [row], [0.0]) == [0.5]
