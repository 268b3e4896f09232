"""Embedding: the `Workflow` object on the real engine with the scripted provider."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from attrs import evolve
from runtime_helpers import trec_program

from promptc.ir import Demo, Model
from promptc.runtime import scripted
from promptc.runtime.engine import make_engine
from promptc.runtime.workflow import PromptcRunError, Result, Workflow


def keyword_classifier(messages):
    q = messages[-1]["content"]
    if "Who" in q:
        return "HUM"
    if "Where" in q:
        return "Label: LOC."
    return "no idea"


@pytest.fixture
def program():
    scripted.register("wf-test", keyword_classifier)
    p = trec_program(demos=(Demo((("question", "Who is Bach?"),), "HUM"),))
    yield evolve(p, models=(Model("task", "scripted/wf-test"),))
    scripted.unregister("wf-test")


@pytest.fixture
def wf(program, tmp_path):
    w = Workflow(program, cache_dir=tmp_path / "cache")
    yield w
    w.close()


def test_call_returns_the_output(wf):
    assert wf(question="Who wrote Hamlet?") == "HUM"
    assert wf(question="Where is Rome?") == "LOC"


def test_failed_sample_raises_with_node_error(wf):
    with pytest.raises(PromptcRunError) as e:
        wf(question="Why is the sky blue?")
    assert e.value.error == "raw: answer is not one of ABBR, ENTY, DESC, HUM, LOC, NUM: 'no idea'"
    assert e.value.trace.record("raw").raw == "no idea"
    assert "answer is not one of" in str(e.value)


def test_wrong_inputs_are_type_errors(wf):
    with pytest.raises(TypeError, match="missing input question"):
        wf()
    with pytest.raises(TypeError, match="unknown input query"):
        wf(question="x", query="y")


def test_acall_and_running_loop(wf):
    async def main():
        a = await wf.acall(question="Who is it?")
        b = wf(question="Where is it?")  # sync call from inside a running loop works too
        return a, b

    assert asyncio.run(main()) == ("HUM", "LOC")


def test_batch_returns_errors_as_values(wf):
    results = wf.batch([{"question": "Who?"}, {"question": "Why?"}, {"quest": "Where?"}], concurrency=2)
    assert all(isinstance(r, Result) for r in results)
    assert [r.output for r in results] == ["HUM", None, None]
    assert [r.ok for r in results] == [True, False, False]
    assert results[2].error == "question: missing input 'question'"


def test_params_are_readable_not_writable(wf):
    assert wf.params["instruction"] == "Classify the question."
    assert wf.params["shots"] == ({"inputs": {"question": "Who is Bach?"}, "output": "HUM"},)
    with pytest.raises(TypeError):
        wf.params["instruction"] = "x"  # type: ignore[index]
    assert wf.inputs == ("question",)
    assert "trec(question: text)" in repr(wf)


def test_engine_is_lazy_and_cached(program, tmp_path):
    w = Workflow(program, cache_dir=tmp_path / "c")
    assert w._engine is None
    w(question="Who?")
    w(question="Who?")
    t = w.accounting.totals()
    assert (t.calls, t.cache_hits) == (1, 1)
    w.close()
    # a new workflow (new process in real life) reads the same on-disk cache
    w2 = Workflow(program, cache_dir=tmp_path / "c")
    w2(question="Who?")
    assert (w2.accounting.totals().calls, w2.accounting.totals().cache_hits) == (0, 1)
    w2.close()
    w3 = Workflow(program, cache_dir=tmp_path / "c", no_cache=True)
    w3(question="Who?")
    assert w3.accounting.totals().calls == 1
    w3.close()


def test_given_engine_is_used(program, tmp_path):
    eng = make_engine(no_cache=True)
    w = Workflow(program, engine=eng)
    w(question="Who?")
    assert eng.accounting.totals().calls == 1
    w.close()


def test_open_workflows_are_closed_at_exit(program, tmp_path):
    # A loop thread left running at interpreter exit can be frozen mid-import and hang
    # the finalizers that import; the exit hook closes every workflow still open.
    from promptc.runtime import workflow

    w = Workflow(program, cache_dir=tmp_path / "cache")
    assert w(question="Who?") == "HUM"
    thread = w._thread
    assert thread is not None and thread.is_alive() and w in workflow._OPEN
    workflow._close_open_workflows()
    assert not thread.is_alive() and w._loop is None
    assert w(question="Who?") == "HUM"  # still usable: a new loop starts
    w.close()


SERVE = r"""
import json, sys
import promptc
wf = promptc.load(sys.argv[1], cache_dir=sys.argv[2])
out = wf(question="Who wrote Hamlet?")
heavy = sorted(m for m in sys.modules if m == "lark" or m.startswith(("lark.", "promptc.optim", "promptc.frontend", "promptc.passes", "promptc.compiler")))
print(json.dumps({"out": out, "heavy": heavy, "params": sorted(wf.params)}), flush=True)
wf.close()
"""


def test_serving_a_pfc_imports_no_compiler_or_training_code(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from promptc.artifact import save
    from promptc.compiler import compile_file

    root = Path(__file__).resolve().parents[2]
    pfc = tmp_path / "trec.pfc"
    save(compile_file(root / "examples" / "trec" / "trec.pflow"), pfc)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"match": "Hamlet", "reply": "hum"}], "default": "LOC"}))
    env = {**os.environ, "PROMPTC_TASK_MODEL": f"scripted/{rules}", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run(
        [sys.executable, "-c", SERVE, str(pfc), str(tmp_path / "cache")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"out": "HUM", "heavy": [], "params": ["answer_format", "instruction", "shots"]}
    assert (tmp_path / "cache").exists()
