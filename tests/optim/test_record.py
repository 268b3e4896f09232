"""What a training run records: every gradient text and every optimizer reply with its
verdict (history.jsonl, the checkpoint, the .pfc, the report, `inspect --history`), the
run's metadata, an honest end line when nothing could be compared, and the progress
events of the live display."""

from __future__ import annotations

import json
import platform

import pytest

from promptc.compiler import compile_source
from promptc.optim import checkpoint
from promptc.optim.history import VERDICTS, Attempt, read_jsonl
from promptc.optim.report import end_line, folded, render
from promptc.optim.trainer import Trainer
from promptc.runtime.engine import make_engine
from tests.optim.helpers import Engine, kind, trec_like
from tests.optim.scripted_task import RULE, SOURCE, Script, data


@pytest.fixture
def script():
    return Script().register()


def make(tmp_path, name="run", **kw):
    train, val = data()
    engine = make_engine(cache_dir=tmp_path / f"cache_{name}")
    kw.setdefault("steps", 2)
    kw.setdefault("batch_size", 4)
    return Trainer(compile_source(SOURCE, "trec.pflow"), train, val, engine, run_dir=tmp_path / name, seed=1, **kw)


def test_gradient_texts_and_every_reply_are_kept_with_verdicts(script, tmp_path):
    result = make(tmp_path).fit()
    rows = read_jsonl(tmp_path / "run" / "history.jsonl")
    first = rows[0]
    # the feedback each param received, from the minibatch rows that failed
    assert set(first["gradients"]) == {"instruction", "answer_format"}
    failing_rows = {first["batch"][i] for i, s in enumerate(first["minibatch_scores"]) if s < 1.0}
    for items in first["gradients"].values():
        assert {g["row"] for g in items} == failing_rows
        assert all(g["text"] == f"State the rule: {RULE}." and g["node"] == "raw" and g["loop_step"] is None
                   for g in items)
    # every proposal's full text and verdict: accepted, lost on the minibatch, refused by a filter
    by_verdict = {p["verdict"]: p for p in first["proposals"]}
    assert set(by_verdict) <= set(VERDICTS)
    accepted = by_verdict["accepted"]
    assert accepted["param"] == "instruction" and RULE in accepted["text"] and accepted["val"] == 1.0
    lost = by_verdict["lost-minibatch"]
    assert lost["text"] == f"Reply with the label only. Rule: {RULE}." and lost["val"] is None
    assert lost["failing_after"] <= lost["failing_before"]
    refused = by_verdict["refused"]
    assert refused["text"] is None and refused["reason"] == "already rejected at this step"
    # the refused replies' own texts are kept, with the filter and the reason
    assert [r["filter"] for r in refused["replies"]] == ["already-rejected", "already-rejected"]
    assert all(r["text"] == lost["text"] for r in refused["replies"])
    assert accepted["replies"] == [{"text": accepted["text"], "filter": "", "reason": ""}]
    # the same records in the checkpoint (typed) and in the result
    state = checkpoint.load(tmp_path / "run", 8, 4)
    feedback = state.history[0].gradients["instruction"]
    assert [f.row for f in feedback] == [g["row"] for g in first["gradients"]["instruction"]]
    assert [a.verdict for a in state.history[0].attempts] == [p["verdict"] for p in first["proposals"]]
    assert state.history[0].attempts[2].replies[0].filter == "already-rejected"
    assert result.history[0]["proposals"] == first["proposals"]


def test_a_lost_gate_verdict_keeps_its_scores():
    lost = Attempt("p", "prompt", "text", val=0.25, val_rows=2, gain=-0.25, reason="stopped early: no gain")
    assert lost.verdict == "lost-gate"
    assert Attempt("p", "prompt", "text", failing_before=1.0, failing_after=1.0).verdict == "lost-minibatch"
    assert Attempt("p", "prompt", None, reason="x").verdict == "refused"
    assert Attempt("p", "prompt", "t", accepted=True, val=1.0).verdict == "accepted"


def test_loop_feedback_names_its_time_step(tmp_path):
    from tests.optim.helpers import two_step

    def answer(req):
        if kind(req) == "backward":
            return json.dumps({"style": "Be shorter.", "text": "Be shorter."})
        if kind(req) == "optimizer":
            return "<proposal>Rewrite the text shorter.</proposal>"
        return "x"

    rows = [{"q": f"q{i}", "answer": "y"} for i in range(4)]
    Trainer(two_step(), rows, rows, Engine(answer), run_dir=tmp_path / "run", steps=1, batch_size=2,
            concurrency=1).fit()
    first = read_jsonl(tmp_path / "run" / "history.jsonl")[0]
    steps = {g["loop_step"] for g in first["gradients"]["style"]}
    assert steps == {0, 1}


def test_run_metadata_in_summary_pfc_and_report(script, tmp_path):
    from promptc import __version__
    from promptc.artifact import load_artifact

    result = make(tmp_path, steps=1, max_calls=500).fit()
    run = json.loads((tmp_path / "run" / "summary.json").read_text())["run"]
    assert run["promptc"] == __version__ and run["seed"] == 1
    assert run["models"] == {"task": "scripted/t_task", "backward": "scripted/t_backward",
                             "optimizer": "scripted/t_optimizer", "teacher": None}
    assert run["options"]["steps"] == 1 and run["options"]["max_calls"] == 500 and run["options"]["batch_size"] == 4
    assert run["machine"]["platform"] == platform.platform() and run["machine"]["cpus"] >= 1
    assert run["started"].endswith("+00:00") and run["seconds"] >= 0
    _, extra = load_artifact(result.artifact)
    kept = extra["run"]
    # the artifact keeps what does not change on --resume: no times, no run folder
    assert kept["models"] == run["models"] and kept["options"]["max_calls"] == 500
    assert "started" not in kept and "run_dir" not in kept["options"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "scripted/t_optimizer" in html and run["started"] in html and __version__ in html


def test_options_as_given_are_recorded(script, tmp_path):
    make(tmp_path, steps=1, options={"steps": 1, "model": "cli"}).fit()
    run = json.loads((tmp_path / "run" / "summary.json").read_text())["run"]
    assert run["options"] == {"steps": 1, "model": "cli"}


def test_a_budget_spent_during_the_start_says_nothing_was_compared(script, tmp_path):
    result = make(tmp_path, max_calls=2).fit()
    assert result.start_val is None and result.best_val is None and result.steps_done == 0
    assert result.stopped == "budget: max_calls=2 reached"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["scores"]["start_val"] is None
    line = end_line(summary["scores"], result.history)
    assert line == "the starting validation did not complete; nothing was proposed or compared"
    html = (tmp_path / "run" / "report.html").read_text()
    assert line in html and "no proposal beat" not in html


def test_end_line_when_nothing_reached_validation():
    refused = {"proposals": [{"param": "p", "text": None, "val": None}]}
    assert end_line({"start_val": 0.5, "best_val": 0.5}, []) == "validation 0.500 (no round finished: nothing was compared)"
    assert end_line({"start_val": 0.5, "best_val": 0.5}, [{"proposals": []}]) == "validation 0.500 -> 0.500 (no proposal was made)"
    assert end_line({"start_val": 0.5, "best_val": 0.5}, [refused]) == (
        "validation 0.500 -> 0.500 (none of 1 proposal(s) reached validation)")
    scored = {"proposals": [{"param": "p", "text": "t", "val": 0.75}]}
    assert end_line({"start_val": 0.5, "best_val": 0.75}, [scored]) == "validation 0.500 -> 0.750"


def test_progress_counts_steps_rows_budget_and_ends_on_the_final_state(script, tmp_path):
    events: list[dict] = []
    result = make(tmp_path, steps=1, max_calls=200, progress=events.append).fit()
    assert max(e["step"] for e in events) == 1 and all(e["steps"] == 1 for e in events)
    last = events[-1]
    assert last["phase"] == "done" and last["stopped"] == result.stopped == "completed 1 step(s)"
    assert last["requests"] == sum(c["requests"] for c in result.accounting.values())
    assert last["budget"] == pytest.approx(last["requests"] / 200)
    validate = [e for e in events if e["phase"] == "validate" and e["round"] == 0]
    assert validate[0]["done"] == 0 and validate[0]["rows"] == 4
    assert [e["done"] for e in validate[1:]] == [1, 2, 3, 4]
    assert all(0.0 <= e["budget"] <= 1.0 for e in events)


def test_demo_rounds_count_as_rounds_not_steps(tmp_path):
    from tests.optim.test_state import TRAIN, VAL, answer

    events: list[dict] = []
    result = Trainer(trec_like(), TRAIN, VAL, Engine(answer), run_dir=tmp_path / "run", steps=1, batch_size=4,
                     seed=3, concurrency=2, progress=events.append).fit()
    kinds = [h["kind"] for h in result.history]
    assert kinds[0] == "demos" and kinds.count("prompts") == 1 and len(kinds) >= 2
    assert result.steps_done == 1
    assert result.stopped == f"completed 1 step(s) in {len(kinds)} rounds"
    assert max(e["step"] for e in events) == 1
    assert max(e["round"] for e in events) == len(kinds)


def test_report_folds_long_texts_and_demo_diffs(script, tmp_path):
    short = folded("a short text")
    assert short == "<pre>a short text</pre>"
    long = folded("word " * 200)
    assert long.startswith("<details><summary>word word") and "(1000 characters)" in long
    result = make(tmp_path).fit()
    html = (tmp_path / "run" / "report.html").read_text()
    assert "State the rule: places are LOC." in html and "already-rejected" in html
    assert "lost on the failing minibatch samples" in html
    # a demos param's diff is folded
    from attrs import evolve

    from promptc.ir import Demo

    program = trec_like()
    shots = program.param("shots")
    trained = program.with_param(evolve(shots, demos=(Demo((("question", "Where is Paris?"),), "LOC"),)))
    page = render(program, trained, result.history, dict(start_val=0.5, best_val=1.0), {})
    section = page.split("<h3>shots</h3>", 1)[1]
    assert section.startswith("<details><summary>the diff")


def test_inspect_history_shows_feedback_and_refused_replies(tmp_path):
    from tests.optim.test_cli import OPT, run, setup

    setup(tmp_path)
    r = run(tmp_path, *OPT, "--run-dir", "run", "--out", "out.pfc")
    assert r.returncode == 0, r.stderr
    r = run(tmp_path, "inspect", "out.pfc", "--history")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "feedback to instruction" in out and "State the rule: places are LOC." in out
    assert "accepted (validation 1.000 on 4 rows)" in out
    assert "reply refused by already-rejected: already rejected at this step" in out
    assert "scripted/writer.json" in out  # the run's metadata: the optimizer model


def test_cli_end_line_and_last_frame_when_the_budget_ends_the_start(tmp_path):
    from tests.optim.test_cli import OPT, run, setup

    setup(tmp_path)
    r = run(tmp_path, *OPT, "--run-dir", "run", "--max-calls", "3")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("budget: max_calls=3 reached: the starting validation did not complete; nothing was")
    assert "0.000" not in first and "validation 0" not in first
    # the live table's last frame is the final state: every request counted, the whole budget spent
    assert "3 (100% of budget)" in r.stderr and "done" in r.stderr
