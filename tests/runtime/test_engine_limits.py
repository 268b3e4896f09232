"""An engine that stops wasting: retry waits within the call's deadline and the run's retry
budget, a circuit breaker per model, provider usage checked, a response byte limit, and
hosted calls that free their thread and connection when the engine stops waiting."""

from __future__ import annotations

import ast
import asyncio
import sys
import time
from pathlib import Path

import msgpack
import pytest

from promptc.runtime import failures, scripted
from promptc.runtime.accounting import Accounting, checked_usage, reported_tokens
from promptc.runtime.breaker import Breaker
from promptc.runtime.cache import Cache
from promptc.runtime.engine import Engine
from promptc.runtime.records import CallRequest, Endpoint

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI, Reply  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def warm():
    """litellm's import and first call are not what these tests time."""
    warm = scripted.register("l-warm", lambda m: "ok")
    asyncio.run(Engine().call(req(warm)))


def req(model: str, text: str = "q", base: str | None = None, **kw) -> CallRequest:
    ep = Endpoint(base_url=base) if base else None
    return CallRequest(model=model, messages=({"role": "user", "content": text},), endpoint=ep, **kw)


def call(engine: Engine, r: CallRequest):
    return asyncio.run(engine.call(r))


def calls(engine: Engine, rs: list[CallRequest]):
    async def go():
        return await asyncio.gather(*(engine.call(r) for r in rs))

    return asyncio.run(go())


# --- retry waits ------------------------------------------------------------------------------


def test_a_retry_after_beyond_the_cap_ends_the_call_at_once():
    model = scripted.register("l-429-long", scripted.faulty(lambda m: "x", rate=1.0, kinds=("429",), retry_after=99999))
    engine = Engine(retries=4, backoff=0.01, max_retry_after=60, breaker=0)
    t0 = time.perf_counter()
    r = call(engine, req(model))
    assert time.perf_counter() - t0 < 2
    assert not r.ok and r.attempts == 1 and "asks to wait 99999s (more than 60s)" in r.error


def test_retry_waits_end_within_the_calls_deadline():
    # a 3 s Retry-After is under the cap but past the call's deadline (0.5 s x 2 attempts)
    model = scripted.register("l-429-3s", scripted.faulty(lambda m: "x", rate=1.0, kinds=("429",), retry_after=3))
    engine = Engine(timeout=0.5, retries=1, max_retry_after=60, breaker=0)
    t0 = time.perf_counter()
    r = call(engine, req(model))
    assert time.perf_counter() - t0 < 2
    assert not r.ok and "would pass the call's deadline" in r.error


def test_the_run_retry_budget_caps_retries_of_a_dead_provider():
    model = scripted.register("l-500", scripted.faulty(lambda m: "x", rate=1.0, kinds=("500",)))
    engine = Engine(retries=4, backoff=0.001, max_backoff=0.002, retry_budget=3, breaker=0)
    results = [call(engine, req(model, f"q{i}")) for i in range(6)]
    assert all(not r.ok for r in results)
    assert sum(r.attempts for r in results) == 6 + 3  # one attempt each, plus the budget
    assert "retry budget is spent" in results[-1].error
    assert engine.accounting.totals().retries == 3


def test_answered_calls_refill_the_retry_budget():
    ok = Breaker(threshold=0, retry_budget=1, retry_refill=2)
    assert ok.may_retry() and not ok.may_retry()
    ok.succeeded("m")
    assert ok.may_retry() and ok.may_retry() and not ok.may_retry()


# --- circuit breaker --------------------------------------------------------------------------


def test_the_breaker_stops_asking_a_model_after_a_run_of_failed_calls():
    model = scripted.register("l-dead", scripted.faulty(lambda m: "x", rate=1.0, kinds=("500",)))
    fn_calls = scripted.register("l-alive", lambda m: "fine")
    engine = Engine(retries=0, breaker=5)
    seen = []
    engine.when_tripped(seen.append)
    results = [call(engine, req(model, f"q{i}")) for i in range(8)]
    assert [r.attempts for r in results] == [1] * 5 + [0] * 3  # no request once it is open
    assert engine.tripped is not None and engine.tripped.model == model and engine.tripped.failures == 5
    assert "injected server error" in engine.tripped.last_error
    assert seen == [engine.tripped]
    assert results[-1].error == engine.tripped.message()
    assert engine.accounting.totals().calls == 5  # the refused requests are no calls
    assert call(engine, req(fn_calls)).text == "fine"  # other models are still asked


def test_a_success_or_a_bad_request_does_not_count_toward_the_breaker():
    flaky = scripted.register("l-flaky", scripted.faulty(lambda m: "ok", rate=0.5, kinds=("500",), seed=3))
    engine = Engine(retries=0, breaker=4)
    for i in range(40):
        call(engine, req(flaky, f"q{i}"))
    assert engine.tripped is None  # never four failures in a row with this seed
    bad = scripted.register("l-bad", lambda m: (_ for _ in ()).throw(scripted.ScriptError("no rule")))
    for i in range(6):
        assert not call(engine, req(bad, f"b{i}")).ok
    assert engine.tripped is None  # a bad request is the sample's problem


# --- usage ------------------------------------------------------------------------------------

# what litellm passes on from the wire (it refuses 7.5 itself: a failed call)
ABSURD = [
    {"prompt_tokens": 10**27, "completion_tokens": 3},
    {"prompt_tokens": -5, "completion_tokens": 3},
    {"prompt_tokens": 7, "completion_tokens": 10**30},
    {"prompt_tokens": 7, "completion_tokens": 5000},  # max_tokens is 16, the answer 3 bytes
]


@pytest.mark.parametrize("usage", ABSURD, ids=[str(u) for u in ABSURD])
def test_usage_that_cannot_be_true_is_unknown_and_never_breaks_a_checkpoint(usage, tmp_path):
    with FakeOpenAI(lambda body: Reply(text="LOC", usage=usage)) as srv:
        engine = Engine(cache=Cache(tmp_path / "c"), retries=0)
        r = call(engine, req("openai/fake-usage", base=srv.base_url, max_tokens=16))
        engine.close()
    assert r.ok and r.text == "LOC" and (r.prompt_tokens, r.completion_tokens, r.cost) == (0, 0, 0.0)
    acc = engine.accounting
    assert acc.unknown_usage == {"openai/fake-usage": 1}
    assert "warning: usage unknown for 1 call of openai/fake-usage" in acc.summary_line()
    msgpack.packb(acc.to_data())  # the numbers a checkpoint stores fit


def test_believable_usage_is_kept():
    msgs = ({"role": "user", "content": "what is the capital of France?"},)
    for bad in (7.5, "7", True, -1, 2**64, float("inf"), None):
        assert reported_tokens({"prompt_tokens": bad, "completion_tokens": 3}) == (None, 3)
        assert checked_usage(bad, 3, 0.0, msgs, 16, "Paris") == (0, 0, 0.0, False)
    assert reported_tokens(type("U", (), {"prompt_tokens": 12.0, "completion_tokens": 3})()) == (12, 3)
    assert checked_usage(12, 3, 0.001, msgs, 16, "Paris") == (12, 3, 0.001, True)
    assert checked_usage(12, 3, float("nan"), msgs, 16, "Paris")[2:] == (0.0, False)
    assert checked_usage(None, 3, 0.0, msgs, 16, "Paris") == (0, 0, 0.0, False)
    acc = Accounting()
    assert acc.usage_warning() == "" and "warning" not in acc.summary_line()


# --- response size, deadline, threads ------------------------------------------------------


def test_a_response_over_the_byte_limit_is_a_failed_attempt_never_cached(tmp_path):
    with FakeOpenAI(lambda body: "x" * 300_000) as srv:
        cache = Cache(tmp_path / "c")
        engine = Engine(cache=cache, retries=1, backoff=0.001, max_backoff=0.002, max_response_bytes=100_000)
        r = call(engine, req("openai/fake-big", base=srv.base_url))
        assert not r.ok and r.attempts == 2 and "a response over" in r.error and "PROMPTC_MAX_RESPONSE_BYTES" in r.error
        assert len(cache) == 0
        engine.close()


def test_the_byte_limit_is_settable_from_the_environment(monkeypatch):
    monkeypatch.setenv("PROMPTC_MAX_RESPONSE_BYTES", "1234")
    assert Engine().max_response_bytes == 1234
    monkeypatch.setenv("PROMPTC_MAX_RESPONSE_BYTES", "lots")
    assert Engine().max_response_bytes == 8 * 1024 * 1024


def test_a_call_that_times_out_frees_its_thread_and_connection():
    # headers at once, then one byte a second: each read succeeds, the whole never ends
    with FakeOpenAI(lambda body: Reply(text="slow " * 50, drip=0.5)) as srv:
        engine = Engine(timeout=1, retries=0)
        t0 = time.perf_counter()
        r = call(engine, req("openai/fake-drip", base=srv.base_url))
        assert not r.ok and "no answer within 1s" in r.error and time.perf_counter() - t0 < 4
        threads = list(engine.local.running._threads)
        engine.close()
        t0 = time.perf_counter()
        for t in threads:
            t.join(5)
        # the server would go on for 2 minutes: the thread stopped reading at the deadline
        assert not any(t.is_alive() for t in threads) and time.perf_counter() - t0 < 2


def test_close_stops_calls_in_flight_at_once():
    with FakeOpenAI(lambda body: Reply(text="slow " * 50, drip=0.5)) as srv:
        engine = Engine(timeout=30, retries=0)

        async def go():
            task = asyncio.ensure_future(engine.call(req("openai/fake-drip2", base=srv.base_url)))
            await asyncio.sleep(1.5)
            threads = list(engine.local.running._threads)
            engine.close()  # the hosted thread is mid-read
            t0 = time.perf_counter()
            for t in threads:
                await asyncio.get_running_loop().run_in_executor(None, t.join, 5)
            stopped = time.perf_counter() - t0
            return await task, stopped, threads

        r, stopped, threads = asyncio.run(go())
    assert not r.ok and stopped < 2 and not any(t.is_alive() for t in threads)


# --- errors as one line; layers -----------------------------------------------------------


def test_describe_cuts_a_traceback_that_does_not_start_a_line():
    e = RuntimeError("Invalid response object Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'x'")
    assert failures.describe(e) == "RuntimeError: Invalid response object"
    assert "\n" not in failures.describe(RuntimeError("two\nlines"))


def test_failures_does_not_import_workers():
    for name in ("failures", "accounting", "netguard", "breaker"):
        tree = ast.parse((ROOT / "promptc" / "runtime" / f"{name}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any("workers" in m or "engine" in m for m in imported), (name, imported)


def test_an_open_breaker_lets_one_probe_through_after_its_cooldown():
    b = Breaker(threshold=2, cooldown=0.2)
    assert b.failed("m", "e1", True) is None and b.failed("m", "e2", True) is not None
    assert b.is_open("m") is not None  # refused during the cooldown
    time.sleep(0.25)
    assert b.is_open("m") is None  # the probe
    assert b.is_open("m") is not None  # the others wait for it
    b.failed("m", "e3", True)  # the probe failed: another cooldown
    assert b.is_open("m") is not None
    time.sleep(0.25)
    assert b.is_open("m") is None
    b.succeeded("m")  # the probe answered: closed
    assert b.is_open("m") is None and b.is_open("m") is None
    assert b.tripped is not None and b.tripped.last_error == "e2"  # the first trip, for the CLI
