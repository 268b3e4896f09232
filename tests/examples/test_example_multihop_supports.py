"""examples/multihop: the query step learns from hops that retrieved a gold passage
(`train { supports found in supporting_titles }`), even though every answer is wrong.

The scripted task model writes a good query (the title of the supporting paragraph the
hop needs) only when the query prompt shows it a worked example (a demo turn); without
one it writes "qqqq", which matches no word, so BM25 returns the row's first paragraph.
For a few training rows that paragraph is a gold one, but not the one holding the answer:
those hops are the only successes of the query step, and every sample scores 0 before
training (the answer is right only when the notes hold it). So without `supports` the
query step has no demo to learn from; with it, it gets demos from those hops, its race
is scored by its own successes, and the winner passes the gate on the workflow's metric.
"""

from __future__ import annotations

import re
from pathlib import Path

from example_script import EXAMPLES, rows

from promptc.compiler import compile_file, compile_source
from promptc.optim import credit
from promptc.optim.trainer import Trainer
from promptc.runtime import scripted
from promptc.runtime.engine import make_engine
from promptc.stdlib.retrieval import passages

SOURCE = EXAMPLES / "multihop" / "multihop.pflow"
ALL = {r["question"]: r for split in ("train", "val", "test") for r in rows("multihop", split)}


def first_is_gold(r: dict) -> bool:
    return r["context"][0][0] in r["supporting_titles"]


def lucky(r: dict) -> bool:
    """The first paragraph is a gold one, and does not hold the answer."""
    return first_is_gold(r) and r["answer"].lower() not in passages(r["context"])[0].lower()


def usable(r: dict) -> bool:
    """The first paragraph is no gold one and does not hold the answer; a gold one does."""
    docs = dict(zip((t for t, _ in r["context"]), passages(r["context"])))
    ans = r["answer"].lower()
    return (
        not first_is_gold(r)
        and ans not in docs[r["context"][0][0]].lower()
        and any(ans in docs[t].lower() for t in r["supporting_titles"] if t in docs)
    )


def task(messages: list[dict]) -> str:
    user = messages[-1]["content"]
    m = re.match(r"Question: (.*?)\nNotes:\n(.*?)\n(?:Passages:\n(.*)\n)?(Search query|Updated notes|Answer):$", user, re.S)
    question, notes, evidence, what = m.groups()
    row = ALL[question]
    if what == "Search query":
        shown = any(x["role"] == "assistant" for x in messages[1:-1])  # a demo turn
        return row["supporting_titles"][0 if not notes.strip() else 1] if shown else "qqqq"
    if what == "Updated notes":
        return (notes + "\n" + evidence).strip()
    return row["answer"] if row["answer"].lower() in notes.lower() else "unknown"


def data():
    train = [r for r in rows("multihop", "train") if lucky(r)][:3]
    train += [r for r in rows("multihop", "train") if usable(r)][:16]
    val = [r for r in rows("multihop", "val") if usable(r)][:4]
    assert len(train) == 19 and len(val) == 4
    return train, val


def fit(program, tmp_path, name: str):
    train, val = data()
    engine = make_engine(cache_dir=tmp_path / f"cache-{name}")
    return Trainer(
        program, train, val, engine, steps=0, batch_size=len(train), proposals=1, run_dir=tmp_path / name, seed=0,
    ).fit()


def test_the_query_step_learns_from_hops_that_found_a_gold_passage(monkeypatch, tmp_path):
    model = scripted.register("ex_multihop_supports", task)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", model)
    monkeypatch.setenv("PROMPTC_TEACHER_MODEL", model)
    program = compile_file(SOURCE)
    assert [(s.value, s.field) for s in program.train.supports] == [("found", "supporting_titles")]
    # the credit goes to the query of the same hop
    assert {k: [v for _, v in pairs] for k, pairs in credit.credited(program).items()} == {
        "q@hop#0": ["found@hop#0"], "q@hop#1": ["found@hop#1"],
    }

    result = fit(program, tmp_path, "with")
    assert result.start_val == 0.0 and result.best_val == 1.0
    query = {p["param"]: p for p in result.history[0]["proposals"]}["query_shots"]
    assert query["accepted"], query["reason"]
    # the race compared the step's own successes: the winner retrieved a gold passage at
    # every hop of the race rows (1.0), the empty set only on the rows whose first paragraph is
    standing = {what: mean for what, mean, _rows in query["race"]["standing"]}
    assert max(standing.values()) == 1.0 and standing["0 fixed"] < 1.0
    assert query["race"]["decided_by"] in ("mean", "prior")
    demos = result.program.param("query_shots").demos or ()
    assert demos
    # every demo is a hop of a training row whose first paragraph is gold ("qqqq" found it),
    # though that row's answer was wrong: the step's success, not the workflow's
    found = {r["question"] for r in data()[0] if lucky(r)}
    assert all(dict(d.inputs)["question"] in found and d.output == "qqqq" for d in demos)

    # the same workflow without `supports`: the query step has nothing to learn from
    plain = compile_source(SOURCE.read_text(encoding="utf-8").replace("supports found in supporting_titles", ""), str(SOURCE))
    assert plain.train.supports == ()
    result = fit(plain, tmp_path, "without")
    query = {p["param"]: p for p in result.history[0]["proposals"]}["query_shots"]
    assert not query["accepted"] and "no candidate demo set" in query["reason"]
    assert result.best_val == 0.0


def test_a_supports_field_no_training_row_has_is_refused_before_any_call(monkeypatch, tmp_path):
    model = scripted.register("ex_multihop_supports_typo", task)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", model)
    src = SOURCE.read_text(encoding="utf-8").replace("in supporting_titles", "in supporting_title")
    program = compile_source(src, str(SOURCE))
    train, val = data()
    try:
        Trainer(program, train, val, make_engine(cache_dir=tmp_path / "c"), steps=0, run_dir=tmp_path / "r")
    except ValueError as e:
        assert "no training row has the field 'supporting_title'" in str(e) and "supporting_titles" in str(e)
    else:
        raise AssertionError("a misspelt supports field was accepted")
    assert not Path(tmp_path / "r").exists()
