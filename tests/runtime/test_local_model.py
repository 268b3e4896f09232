"""End to end on the embedded model: SmolLM2-135M through litellm's `local` provider.

Skipped (with the reason) only where llama_cpp or the weights are not installed; CI
installs both (`make venv`).
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from promptc.runtime import local
from promptc.runtime.engine import Engine
from promptc.runtime.records import CallRequest
from tests.native_probe import child_report, crash_report

REASON = local.available("default")
pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(REASON is not None, reason=f"embedded model unavailable: {REASON}"),
]

LABELS = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(cache=None, timeout=300, retries=0)


def call(engine: Engine, req: CallRequest):
    return asyncio.run(engine.call(req))


def test_a_completion_runs_in_a_child_process_first():
    """The suite's guard against a native crash (tests/conftest.py) ran, and passed."""
    assert crash_report() is None


def test_a_native_crash_is_reported_with_its_signal():
    report = child_report("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert report is not None and "crashed in a child process (SIGSEGV)" in report


def test_models_load_without_extra_buffer_types():
    """llama.cpp's extra buffer types (the AMX path among them) are off for every model."""
    model = local.get("default")
    assert model.llm.model_params.use_extra_bufts is False
    import llama_cpp

    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True  # restored after loading


def test_context_is_the_trained_context():
    """SmolLM2 was trained for 8192 tokens; the model is loaded with that (once 2048)."""
    model = local.get("default")
    meta = model.llm.metadata  # llama.cpp's own reading of the GGUF header
    trained = int(meta[meta["general.architecture"] + ".context_length"])
    assert local.gguf_context_length(model.path) == trained
    if local.ENV_CTX not in os.environ:
        assert model.n_ctx == min(trained, local.MAX_CTX)
        if local.ENV_MODEL not in os.environ:  # the shipped SmolLM2
            assert model.n_ctx == 8192


def test_answers_a_question(engine):
    r = call(engine, CallRequest(
        model="local/default",
        messages=({"role": "user", "content": "What is the capital of France? Answer in one word."},),
        max_tokens=16,
    ))
    assert r.ok, r.error
    assert "paris" in r.text.lower()
    assert r.prompt_tokens > 0 and r.completion_tokens > 0 and r.cost == 0.0
    assert engine.accounting.totals().calls == 1


def test_choices_constrain_the_answer_to_a_label(engine):
    results = [
        call(engine, CallRequest(
            model="local/default",
            messages=(
                {"role": "system", "content": "Classify the question as one of " + ", ".join(LABELS) + "."},
                {"role": "user", "content": f"Question: {q}"},
            ),
            max_tokens=8,
            choices=LABELS,
        ))
        for q in ("Who wrote Hamlet?", "How many legs does a spider have?", "Where is Rome?")
    ]
    for r in results:
        assert r.ok, r.error
        assert r.text in LABELS


def test_repeated_choices_and_schema_reuse_their_grammar(engine):
    model = local.get("default")
    labels = ("yes", "no", "maybe")  # a label set no other test uses: the first call builds it
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    before = model.grammars_built
    for q in ("Is water wet?", "Is fire cold?"):
        r = call(engine, CallRequest(
            model="local/default", messages=({"role": "user", "content": q},), max_tokens=4, choices=labels,
        ))
        assert r.ok and r.text in labels, (r.text, r.error)
    assert model.grammars_built == before + 1
    for q in ("Is water wet?", "Is fire cold?"):
        r = call(engine, CallRequest(
            model="local/default", messages=({"role": "user", "content": q + " Answer as JSON."},), max_tokens=12,
            response_format=schema,
        ))
        assert r.ok, r.error
        assert isinstance(json.loads(r.text)["ok"], bool)
    assert model.grammars_built == before + 2


def test_one_single_threaded_instance_per_core(monkeypatch):
    monkeypatch.delenv(local.ENV_THREADS, raising=False)
    monkeypatch.delenv(local.ENV_INSTANCES, raising=False)
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert (local.local_instances(), local.llama_threads()) == (2, 1)
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert (local.local_instances(), local.llama_threads()) == (local.MAX_INSTANCES, 1)
    monkeypatch.setenv(local.ENV_THREADS, "3")  # threads given: the cores hold 5 such instances
    assert (local.local_instances(), local.llama_threads()) == (5, 3)
    monkeypatch.delenv(local.ENV_THREADS)
    monkeypatch.setenv(local.ENV_INSTANCES, "2")  # instances given: they share the cores
    assert (local.local_instances(), local.llama_threads()) == (2, 8)
    monkeypatch.setenv(local.ENV_THREADS, "1")
    assert (local.local_instances(), local.llama_threads()) == (2, 1)
    monkeypatch.setenv(local.ENV_INSTANCES, "many")  # not an integer: ignored
    assert local.local_instances() == local.MAX_INSTANCES


def test_json_schema_constrains_the_answer(engine):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    r = call(engine, CallRequest(
        model="local/default",
        messages=({"role": "user", "content": "Name a city and its country, as JSON."},),
        max_tokens=48,
        response_format=schema,
    ))
    assert r.ok, r.error
    data = json.loads(r.text)
    assert set(data) >= {"city", "country"} and all(isinstance(data[k], str) for k in ("city", "country"))


def test_missing_gguf_is_a_clear_non_retried_error(engine, tmp_path):
    r = call(engine, CallRequest(
        model=f"local/{tmp_path / 'missing.gguf'}",
        messages=({"role": "user", "content": "hi"},),
    ))
    assert not r.ok and r.attempts == 1
    assert "GGUF model file not found" in r.error


def test_free_strings_in_a_schema_are_bounded_to_fit_the_token_budget():
    from promptc.runtime.local import bounded

    schema = {"type": "object", "properties": {
        "thought": {"type": "string"}, "action": {"type": "string", "enum": ["a", "b"]},
        "arg": {"type": "string", "maxLength": 10}, "items": {"type": "array", "items": {"type": "string"}}}}
    out = bounded(schema, 150)
    props = out["properties"]
    assert props["thought"]["maxLength"] == 150 and props["items"]["items"]["maxLength"] == 150
    assert "maxLength" not in props["action"] and props["arg"]["maxLength"] == 10
    assert "maxLength" not in schema["properties"]["thought"]  # the caller's schema is untouched


def test_a_long_token_budget_keeps_strings_under_what_llama_cpp_accepts():
    from promptc.runtime.local import MAX_STRING, bounded

    out = bounded({"type": "object", "properties": {"x": {"type": "string"}}}, 1024)
    assert out["properties"]["x"]["maxLength"] == MAX_STRING <= 1000
