"""The engine through litellm with the scripted provider: retries, timeouts, accounting."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from promptc.runtime import engine as engine_module
from promptc.runtime import scripted
from promptc.runtime.accounting import Accounting, Counts
from promptc.runtime.engine import Engine, make_engine, to_response_format
from promptc.runtime.failures import classify, retry_after, scrub
from promptc.runtime.records import CallRequest


def req(model: str, text: str, **kw) -> CallRequest:
    return CallRequest(model=model, messages=({"role": "user", "content": text},), **kw)


def run(coro):
    return asyncio.run(coro)


def fast_engine(**kw) -> Engine:
    kw.setdefault("backoff", 0.001)
    kw.setdefault("max_backoff", 0.004)
    return Engine(**kw)


def test_answer_tokens_and_accounting_per_phase():
    model = scripted.register("e-echo", lambda m: "echo " + m[-1]["content"])
    engine = fast_engine()
    r1 = run(engine.call(req(model, "one two three")))
    r2 = run(engine.call(req(model, "four", phase="backward")))
    assert r1.ok and r1.text == "echo one two three"
    assert (r1.prompt_tokens, r1.completion_tokens, r1.attempts, r1.cached) == (3, 4, 1, False)
    assert r2.text == "echo four"
    acc = engine.accounting
    assert acc.totals("forward") == Counts(calls=1, prompt_tokens=3, completion_tokens=4)
    assert acc.totals("backward") == Counts(calls=1, prompt_tokens=1, completion_tokens=2)
    assert set(acc.by_phase()) == {"forward", "backward"}
    assert acc.by_model()[model].calls == 2
    assert acc.summary_line() == "calls 2 (cache hits 0) · tokens 4 in / 6 out · $0.0000"


@pytest.mark.parametrize("retries", [4, 0])
def test_fault_injection_30_percent_every_request_accounted(retries):
    inner = scripted.faulty(lambda m: "answer: " + m[-1]["content"], rate=0.3, seed=7)
    model = scripted.register(f"e-faulty-{retries}", inner)
    engine = fast_engine(retries=retries)
    n = 200

    async def batch():
        return await asyncio.gather(*(engine.call(req(model, f"q{i}")) for i in range(n)))

    results = run(batch())
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    assert len(ok) + len(failed) == n
    assert all(r.text is None and r.error for r in failed)
    t = engine.accounting.totals()
    assert t.calls == n and t.cache_hits == 0
    assert t.errors == len(failed) and t.answered == len(ok)
    # every raised fault cost one attempt: retries + first-attempt failures that stuck
    raised = inner.injected["429"] + inner.injected["500"] + inner.injected["timeout"]
    assert t.retries == sum(r.attempts - 1 for r in results)
    assert inner.calls == sum(r.attempts for r in results)
    assert raised == t.retries + len(failed)
    assert raised > 30  # the injection really happened
    garbage = [r for r in ok if not r.text.startswith("answer: ")]
    assert len(garbage) == inner.injected["garbage"] > 0  # garbage is an answer; parsing it is downstream
    if retries == 0:
        assert t.retries == 0 and len(failed) == raised
        assert {"RateLimitError" in r.error or "InternalServerError" in r.error or "Timeout" in r.error for r in failed} == {True}
    else:
        assert t.retries > 0 and len(failed) <= 3  # 0.3**5 of 200 is about 0.5
        assert all("gave up after 5 attempts" in r.error for r in failed)


def test_retry_after_header_is_honoured():
    model = scripted.register("e-429", scripted.faulty(lambda m: "x", rate=1.0, kinds=("429",), retry_after=0.3))
    engine = fast_engine(retries=1)
    start = time.perf_counter()
    r = run(engine.call(req(model, "q")))
    elapsed = time.perf_counter() - start
    assert not r.ok and r.attempts == 2
    assert elapsed >= 0.3
    assert "RateLimitError" in r.error


def test_timeout_per_attempt_then_error():
    async def hang(messages):
        await asyncio.sleep(30)
        return "too late"

    model = scripted.register("e-hang", hang)
    engine = fast_engine(timeout=0.2, retries=1)
    start = time.perf_counter()
    r = run(engine.call(req(model, "q")))
    elapsed = time.perf_counter() - start
    assert not r.ok and r.attempts == 2
    assert "no answer within 0.2s" in r.error
    assert elapsed < 5
    assert engine.accounting.totals().errors == 1


def test_non_retryable_errors_fail_at_once():
    def broken(messages):
        raise ValueError("cannot")

    model = scripted.register("e-broken", broken)
    engine = fast_engine(retries=4)
    r = run(engine.call(req(model, "q")))
    assert not r.ok and r.attempts == 1
    assert "ValueError: cannot" in r.error
    r2 = run(engine.call(req("scripted/not-registered-anywhere", "q")))
    assert not r2.ok and r2.attempts == 1 and "no scripted engine" in r2.error
    assert engine.accounting.totals() == Counts(calls=2, errors=2)


def test_choices_and_schema_reach_the_provider():
    seen: list[dict] = []

    def spy(messages, options):
        seen.append(options)
        return options["choices"][-1] if options["choices"] else "{}"

    model = scripted.register("e-spy", spy)
    engine = fast_engine()
    r = run(engine.call(req(model, "q", choices=("ABBR", "HUM"), temperature=0.5, max_tokens=9, seed=4)))
    assert r.text == "HUM"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    run(engine.call(req(model, "q2", response_format=schema)))
    assert seen[0]["choices"] == ["ABBR", "HUM"]
    assert (seen[0]["temperature"], seen[0]["max_tokens"], seen[0]["seed"]) == (0.5, 9, 4)
    assert seen[1]["response_format"]["json_schema"]["schema"] == schema
    # hosted providers never get promptc's extra_body (they would reject it)
    assert "extra_body" not in engine._kwargs(req("openai/gpt-4o-mini", "q", choices=("A",)))


def test_max_concurrency_bounds_calls_in_flight():
    state = {"now": 0, "peak": 0}

    async def slow(messages):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.02)
        state["now"] -= 1
        return "ok"

    model = scripted.register("e-slow", slow)
    engine = fast_engine(max_concurrency=3)

    async def batch():
        return await asyncio.gather(*(engine.call(req(model, f"q{i}")) for i in range(12)))

    assert all(r.ok for r in run(batch()))
    assert state["peak"] == 3


def test_scripted_latency_runs_concurrently():
    model = scripted.register("e-lat", lambda m: "ok", latency=0.2)
    engine = fast_engine()

    async def batch():
        return await asyncio.gather(*(engine.call(req(model, f"q{i}")) for i in range(20)))

    start = time.perf_counter()
    assert all(r.ok for r in run(batch()))
    assert time.perf_counter() - start < 2.0  # 20 x 0.2 s would be 4 s if serialized


def test_classify_and_retry_after_parsing():
    import httpx
    import litellm

    request = httpx.Request("POST", "http://x")
    e429 = litellm.RateLimitError("r", llm_provider="p", model="m",
                                  response=httpx.Response(429, headers={"retry-after-ms": "1500"}, request=request))
    assert classify(e429) == (True, 1.5)
    assert classify(litellm.AuthenticationError("no", llm_provider="p", model="m"))[0] is False
    assert classify(litellm.BadRequestError("no", llm_provider="p", model="m"))[0] is False
    assert classify(litellm.ServiceUnavailableError("down", llm_provider="p", model="m"))[0] is True
    assert classify(litellm.APIConnectionError("reset", llm_provider="p", model="m"))[0] is True
    assert classify(TimeoutError())[0] is True
    assert classify(RuntimeError("bug"))[0] is False

    class WithDate(Exception):
        response = httpx.Response(503, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, request=request)

    assert retry_after(WithDate()) == 0.0  # a date in the past: retry now


def test_secrets_are_scrubbed(monkeypatch):
    monkeypatch.setenv("SOMEPROVIDER_API_KEY", "abcd1234secretvalue")
    text = scrub("failed with key abcd1234secretvalue and sk-proj-ABCDEFGHIJKLMNOP")
    assert "abcd1234secretvalue" not in text and "sk-proj-ABCDEFGH" not in text


def test_response_format_wrapping():
    schema = {"type": "object"}
    assert to_response_format(schema) == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    wrapped = {"type": "json_object"}
    assert to_response_format(wrapped) is wrapped


def test_accounting_round_trip_and_since():
    acc = Accounting()
    acc.add("forward", "m1", calls=2, prompt_tokens=10, completion_tokens=3, cost=0.5)
    snap = acc.snapshot()
    acc.add("forward", "m1", cache_hits=4)
    acc.add("propose", "m2", calls=1, errors=1, retries=2)
    again = Accounting.from_data(acc.to_data())
    assert again.rows() == acc.rows()
    delta = acc.since(snap)
    assert delta.totals() == Counts(calls=1, cache_hits=4, errors=1, retries=2)
    assert acc.summary_line() == (
        "calls 3 (cache hits 4) · tokens 10 in / 3 out · $0.5000 · errors 1 · retries 2"
    )


def test_make_engine_reads_worker_processes_from_the_environment(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PROMPTC_ENGINE_PROCESSES", "2")
    monkeypatch.setattr(engine_module, "_cores", lambda: 1)
    assert make_engine(no_cache=True).processes == 2
    assert make_engine(no_cache=True).processes_from == 1  # a set number: from the first call
    assert make_engine(no_cache=True, processes=0).processes == 0  # an explicit argument wins
    for bad in ("two", "-1"):
        monkeypatch.setenv("PROMPTC_ENGINE_PROCESSES", bad)
        caplog.clear()
        with caplog.at_level("WARNING", logger="promptc.runtime.engine"):
            assert make_engine(no_cache=True).processes == 0  # ignored: the default (one core here)
        assert f"PROMPTC_ENGINE_PROCESSES='{bad}' ignored: it must be a whole number" in caplog.text
    monkeypatch.delenv("PROMPTC_ENGINE_PROCESSES")
    monkeypatch.setattr(engine_module, "_cores", lambda: 2)  # unset: workers when there are cores
    auto = make_engine(no_cache=True)
    assert (auto.processes, auto.processes_from) == (engine_module.AUTO_PROCESSES, engine_module.AUTO_FROM)
    monkeypatch.setattr(engine_module, "_cores", lambda: 1)
    assert make_engine(no_cache=True).processes == 0  # one core: nothing to spread over


def test_make_engine_no_cache(tmp_path):
    assert make_engine(cache_dir=tmp_path / "c", no_cache=True).cache is None
    e = make_engine(cache_dir=tmp_path / "c")
    assert e.cache is not None and (tmp_path / "c" / "calls.sqlite").exists()


# --- hosted providers: litellm's sync `completion` on the engine's thread pool -------------
# litellm's documented `mock_response` / `mock_delay` stand in for the provider, so these
# run litellm's whole hosted path (parameter mapping, response, cost) without a network.


def hosted_engine(monkeypatch, seen: list | None = None, fail_first: int = 0, **kw):
    """An Engine for "openai/gpt-4o-mini" whose litellm.completion answers from a mock."""
    from promptc.runtime import providers

    litellm = providers.ensure_litellm()
    real = litellm.completion
    state = {"n": 0, "now": 0, "peak": 0}
    lock = threading.Lock()

    def completion(**kwargs):
        with lock:
            state["n"] += 1
            n = state["n"]
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        if seen is not None:
            seen.append((threading.current_thread().name, kwargs))
        try:
            if n <= fail_first:
                return real(**{**kwargs, "mock_response": "litellm.RateLimitError"})
            return real(**kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(litellm, "completion", completion)
    async def no_async(**kwargs):
        raise AssertionError("hosted calls must not take litellm.acompletion")

    monkeypatch.setattr(litellm, "acompletion", no_async)
    kw.setdefault("extra_params", {"mock_response": "hosted answer", "api_key": "sk-test-not-a-real-key-000"})
    engine = fast_engine(**kw)
    engine.test_state = state  # calls, calls in flight now, most in flight at once
    return engine


def test_hosted_call_runs_litellm_completion_on_the_engine_threads(monkeypatch):
    seen: list = []
    engine = hosted_engine(monkeypatch, seen)
    r = run(engine.call(req("openai/gpt-4o-mini", "q", temperature=0.3, max_tokens=7)))
    engine.close()
    assert r.ok and r.text == "hosted answer" and r.attempts == 1
    assert r.prompt_tokens > 0 and r.completion_tokens > 0
    assert r.cost > 0  # litellm knows gpt-4o-mini's price
    (thread, kwargs), = seen
    assert thread.startswith("promptc-call")
    assert (kwargs["temperature"], kwargs["max_tokens"], kwargs["timeout"]) == (0.3, 7, engine.timeout)
    assert kwargs["num_retries"] == 0 and "extra_body" not in kwargs
    t = engine.accounting.totals()
    assert (t.calls, t.errors, t.prompt_tokens, t.cost) == (1, 0, r.prompt_tokens, r.cost)


def test_hosted_calls_in_flight_are_bounded_by_threads(monkeypatch):
    seen: list = []
    engine = hosted_engine(
        monkeypatch, seen, threads=3,
        extra_params={"mock_response": "ok", "mock_delay": 0.05},
    )

    async def batch():
        return await asyncio.gather(*(engine.call(req("openai/gpt-4o-mini", f"q{i}")) for i in range(12)))

    start = time.perf_counter()
    results = run(batch())
    elapsed = time.perf_counter() - start
    engine.close()
    assert all(r.ok for r in results)
    assert 2 <= engine.test_state["peak"] <= 3  # concurrent, never more than the threads
    assert len({name for name, _ in seen}) <= 3
    assert elapsed >= 4 * 0.05 * 0.9  # 12 calls of 50 ms on 3 threads: at least 4 rounds


def test_hosted_rate_limit_is_retried_then_answered(monkeypatch):
    engine = hosted_engine(monkeypatch, fail_first=2, retries=3)
    r = run(engine.call(req("openai/gpt-4o-mini", "q")))
    engine.close()
    assert r.ok and r.attempts == 3 and r.text == "hosted answer"
    t = engine.accounting.totals()
    assert (t.calls, t.retries, t.errors) == (1, 2, 0)


def test_hosted_timeout_is_an_error_value(monkeypatch):
    engine = hosted_engine(
        monkeypatch, timeout=0.2, retries=1,
        extra_params={"mock_response": "late", "mock_delay": 3.0, "api_key": "sk-test-not-a-real-key-000"},
    )
    start = time.perf_counter()
    r = run(engine.call(req("openai/gpt-4o-mini", "q")))
    elapsed = time.perf_counter() - start
    engine.close()
    assert not r.ok and r.attempts == 2 and "no answer within 0.2s" in r.error
    assert elapsed < 2.5  # two 0.2 s deadlines (slow on a loaded machine), not a 3 s sleep in a thread
    assert engine.accounting.totals().errors == 1


def test_close_stops_the_threads_and_a_later_call_starts_them_again(monkeypatch):
    engine = hosted_engine(monkeypatch)
    assert run(engine.call(req("openai/gpt-4o-mini", "a"))).ok
    pool = engine.local.running
    engine.close()
    assert engine.local.running is None and pool._shutdown
    assert run(engine.call(req("openai/gpt-4o-mini", "b"))).ok
    engine.close()


# --- hosted calls in worker processes (Engine(processes=N), runtime/procpool.py) ---------------------------------


def test_worker_processes_answer_retry_and_account():
    """One worker (spawning one costs a litellm import: seconds): answers, retries, death."""
    engine = fast_engine(
        processes=1, retries=1,
        extra_params={"mock_response": "from a worker", "api_key": "sk-test-not-a-real-key-000"},
    )
    try:
        r = run(engine.call(req("openai/gpt-4o-mini", "q")))
        assert r.ok and r.text == "from a worker" and r.attempts == 1
        assert r.prompt_tokens > 0 and r.cost > 0  # usage and litellm's price, from the worker
        worker = engine.executor.workers.procs[0]
        assert worker.pid != os.getpid() and worker.poll() is None
        # a rate limit raised in the worker is classified there and retried here
        engine.extra_params["mock_response"] = "litellm.RateLimitError"
        failed = run(engine.call(req("openai/gpt-4o-mini", "q2")))
        assert not failed.ok and failed.attempts == 2
        assert failed.error.startswith("gave up after 2 attempts: litellm.RateLimitError")
        t = engine.accounting.totals()
        assert (t.calls, t.errors, t.retries) == (2, 1, 1)
        # a worker that dies fails its attempt with a retryable error; the retry starts a fresh set
        engine.extra_params["mock_response"] = "after the kill"
        pool = engine.executor.workers
        worker.kill()
        worker.wait(10)
        again = run(engine.call(req("openai/gpt-4o-mini", "q3")))
        assert again.ok and again.text == "after the kill" and again.attempts == 2
        assert pool.broken and engine.executor.workers is not pool
        fresh = engine.executor.workers.procs[0]
        assert fresh.pid != worker.pid and fresh.poll() is None
    finally:
        engine.close()
    assert engine.executor.workers is None and fresh.poll() is not None


def test_lazy_worker_processes_start_at_the_calls_in_flight_and_take_over(monkeypatch):
    """processes_from=3: one call stays on the threads; 3 in flight start the worker, and
    once it is ready the hosted calls go there (the in-process mock sees no more)."""
    engine = hosted_engine(
        monkeypatch, processes=1, processes_from=3,
        extra_params={"mock_response": "ok", "mock_delay": 0.2, "api_key": "sk-test-not-a-real-key-000"},
    )
    try:
        assert run(engine.call(req("openai/gpt-4o-mini", "alone"))).ok
        assert engine.executor.workers is None and engine.test_state["n"] == 1

        async def batch(tag: str):
            return await asyncio.gather(*(engine.call(req("openai/gpt-4o-mini", f"{tag}{i}")) for i in range(4)))

        assert all(r.ok for r in run(batch("a")))  # answered on the threads meanwhile
        assert engine.executor.workers is not None and engine.test_state["n"] == 5
        deadline = time.monotonic() + 120
        while not engine.executor.workers.is_ready and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.executor.workers.is_ready
        assert all(r.ok for r in run(batch("b")))
        assert engine.test_state["n"] == 5  # the worker answered these
    finally:
        engine.close()
