"""The trainer end to end on the scripted engine, the real compiler and the real interpreter."""

from __future__ import annotations

import pytest

from promptc.compiler import compile_source
from promptc.optim import checkpoint
from promptc.optim.trainer import Trainer
from promptc.runtime.engine import make_engine
from tests.optim.scripted_task import RULE, SOURCE, Script, data


@pytest.fixture
def script():
    return Script().register()


def make(tmp_path, name="run", cache="cache", **kw):
    train, val = data()
    program = compile_source(SOURCE, "trec.pflow")
    engine = make_engine(cache_dir=tmp_path / cache)
    kw.setdefault("steps", 2)
    kw.setdefault("batch_size", 4)
    return Trainer(program, train, val, engine, run_dir=tmp_path / name, seed=1, **kw)


def test_rule_is_learned_and_validation_rises(script, tmp_path):
    result = make(tmp_path).fit()
    assert result.start_val == 0.5 and result.best_val == 1.0
    assert RULE in result.program.param("instruction").text
    assert result.program.param("answer_format").text == "Reply with the label only."
    first = result.history[0]
    assert first["accepted"] == ["instruction"]
    assert any(p.get("accepted") for p in first["proposals"])
    # outputs
    assert (tmp_path / "run" / "history.jsonl").exists() and (tmp_path / "run" / "report.html").exists()
    assert result.artifact and (tmp_path / "run" / "trec.pfc").exists()


def test_only_failing_samples_cost_backward_calls(script, tmp_path):
    result = make(tmp_path, steps=1).fit()
    h = result.history[0]
    assert 0 < h["failing"] < 4
    # one llm node: exactly one backward call per failing sample
    assert h["backward_calls"] == h["failing"] == script.calls["backward"]
    assert h["accounting"]["backward"]["requests"] == h["failing"]


def test_peers_appear_in_the_optimizer_prompt(script, tmp_path):
    make(tmp_path, steps=1).fit()
    first = script.optimizer_prompts[0]
    assert "## Prompt to improve: `instruction`" in first
    assert "`answer_format` (role: how to write the answer): 'Reply with the label only.'" in first


def test_budget_stops_the_run(script, tmp_path):
    result = make(tmp_path, steps=5, max_calls=6).fit()
    assert result.stopped.startswith("budget: max_calls=6")
    assert sum(c["requests"] for c in result.accounting.values()) <= 6
    assert script.total() <= 6
    assert (tmp_path / "run" / "report.html").exists()


def test_token_budget(script, tmp_path):
    result = make(tmp_path, steps=5, max_tokens=50).fit()
    assert result.stopped.startswith("budget: max_tokens=50")


def _artifact_state(path):
    from promptc.artifact import load_artifact

    program, extra = load_artifact(path)
    return {p.name: p.text for p in program.params}, extra["scores"], extra["history"]


def test_interrupt_and_resume_is_lossless(tmp_path):
    # the uninterrupted reference run, with its own cache
    ref = Script().register()
    full = make(tmp_path, "full", "cache_full", steps=3).fit()
    assert full.stopped == "completed 3 step(s)"
    # the same run stopped after step 1 (as if killed at a step boundary), then resumed
    part = Script().register()
    first = make(tmp_path, "part", "cache_part", steps=3, stop_after=1).fit()
    assert first.stopped == "interrupted after step 1"
    assert checkpoint.load(tmp_path / "part", 8, 4).step == 1
    res = make(tmp_path, "part", "cache_part", steps=3, resume=True).fit()
    assert _artifact_state(res.artifact) == _artifact_state(full.artifact)
    assert part.total() == ref.total()  # no call was made twice
    # resuming a finished run makes no call at all and gives the same artifact
    again = Script().register()
    done = make(tmp_path, "part", "cache_part", steps=3, resume=True).fit()
    assert _artifact_state(done.artifact) == _artifact_state(full.artifact)
    assert again.total() == 0


def test_stop_in_the_middle_of_a_step_then_resume(tmp_path):
    ref = Script().register()
    full = make(tmp_path, "full", "cache_full", steps=2).fit()
    # a call budget that runs out in the middle of step 1: the step is abandoned
    part = Script().register()
    stopped = make(tmp_path, "part", "cache_part", steps=2, max_calls=9).fit()
    assert stopped.stopped.startswith("budget") and stopped.steps_done == 0
    assert checkpoint.load(tmp_path / "part", 8, 4).step == 0
    # resumed without the budget: the abandoned step's calls come from the cache
    res = make(tmp_path, "part", "cache_part", steps=2, resume=True).fit()
    assert _artifact_state(res.artifact)[0] == _artifact_state(full.artifact)[0]
    assert res.best_val == full.best_val
    assert part.total() == ref.total()
