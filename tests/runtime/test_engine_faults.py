"""Engine under faults: empty or malformed responses are failed, retried and never cached;
per-call timeouts are settable per model and from the CLI."""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace

import pytest

from promptc.runtime import providers, scripted
from promptc.runtime.cache import Cache
from promptc.runtime.engine import Engine
from promptc.runtime.records import CallRequest


def req(model: str, text: str = "q") -> CallRequest:
    return CallRequest(model=model, messages=({"role": "user", "content": text},))


def response(content="fine", choices=True):
    if not choices:
        return SimpleNamespace(choices=[], usage=None)
    return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=content))], usage=None)


@pytest.fixture
def fake(monkeypatch):
    """litellm answering from a list of responses (the last repeats): `completion`, which
    hosted calls use (on the engine's threads), and `acompletion` alike."""
    litellm = providers.ensure_litellm()
    calls = []

    def install(*responses):
        def completion(**kw):
            calls.append(kw)
            return responses[min(len(calls), len(responses)) - 1]

        async def acompletion(**kw):
            return completion(**kw)

        monkeypatch.setattr(litellm, "completion", completion)
        monkeypatch.setattr(litellm, "acompletion", acompletion)
        return calls

    return install


BAD = {
    "no-choices": response(choices=False),
    "content-none": response(content=None),
    "content-empty": response(content=""),
    "no-message": SimpleNamespace(choices=[SimpleNamespace()], usage=None),
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_bad_response_is_a_failed_call_never_cached(tmp_path, fake, bad):
    calls = fake(bad)
    engine = Engine(cache=Cache(tmp_path / "c"), retries=2, backoff=0.001, max_backoff=0.002)
    r = asyncio.run(engine.call(req("openai/gpt-x")))
    assert not r.ok and r.text is None and "gave up after 3 attempts" in r.error and r.attempts == 3
    assert len(calls) == 3 and engine.accounting.totals().errors == 1
    r = asyncio.run(engine.call(req("openai/gpt-x")))  # nothing was cached: it asks again
    assert not r.cached and len(calls) == 6


def test_empty_choices_then_an_answer_is_retried_and_cached(tmp_path, fake):
    calls = fake(response(choices=False), response("LOC"))
    engine = Engine(cache=Cache(tmp_path / "c"), retries=2, backoff=0.001, max_backoff=0.002)
    r = asyncio.run(engine.call(req("openai/gpt-x")))
    assert r.ok and r.text == "LOC" and r.attempts == 2
    again = asyncio.run(engine.call(req("openai/gpt-x")))
    assert again.cached and again.text == "LOC" and len(calls) == 2


def test_per_model_timeout():
    async def hang(messages):
        await asyncio.sleep(30)

    model = scripted.register("f-hang", hang)
    engine = Engine(timeout=60, timeouts={"scripted/": 0.1, "openai/gpt-x": 5}, retries=0)
    assert engine.timeout_for("openai/gpt-x") == 5 and engine.timeout_for("openai/other") == 60
    assert engine.timeout_for(model) == 0.1
    t0 = time.perf_counter()
    r = asyncio.run(engine.call(req(model)))
    assert not r.ok and "no answer within 0.1s" in r.error and time.perf_counter() - t0 < 5


@pytest.mark.parametrize("command", ["run", "eval", "optimize"])
def test_timeout_flag_on_every_command(command):
    from promptc.cli import build_parser

    extra = {"run": ["--input", "q=x"], "eval": ["--data", "d.jsonl"], "optimize": ["--train", "t", "--val", "v"]}
    args = build_parser().parse_args([command, "w.pflow", *extra[command], "--timeout", "7", "--timeout", "openai/=3"])
    assert args.timeout == ["7", "openai/=3"]


def test_cli_timeouts_reach_the_engine(tmp_path):
    from promptc.cli.run import CliError, make_cli_engine, parse_timeouts

    ns = argparse.Namespace(no_cache=True, cache_dir=None, timeout=["12", "scripted/=0.5"])
    engine = make_cli_engine(ns)
    assert engine.timeout == 12 and engine.timeout_for("scripted/x") == 0.5
    for bad in ("0", "-1", "abc", "=3", "inf", "m=nan"):
        with pytest.raises(CliError):
            parse_timeouts([bad])


def test_empty_answer_in_an_old_cache_is_asked_again(tmp_path, fake):
    from promptc.runtime.cache import CachedAnswer, cache_key

    cache = Cache(tmp_path / "c")
    cache.put(cache_key(req("openai/gpt-x")), "openai/gpt-x", CachedAnswer("", 1, 0, 0.0))
    calls = fake(response("HUM"))
    r = asyncio.run(Engine(cache=cache, retries=0).call(req("openai/gpt-x")))
    assert r.ok and r.text == "HUM" and not r.cached and len(calls) == 1
