"""The engine's executors (runtime/executor.py): one attempt runs where the executor says;
everything around it (cache, retries, accounting) stays in the engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from promptc.runtime import scripted
from promptc.runtime.engine import Engine, make_engine
from promptc.runtime.executor import Attempt, ExecutorUnavailable, InProcess
from promptc.runtime.records import CallRequest
from promptc.runtime.wire import Answer

ROOT = Path(__file__).resolve().parents[2]


def req(model: str, text: str) -> CallRequest:
    return CallRequest(model=model, messages=({"role": "user", "content": text},))


def test_in_process_runs_a_custom_provider_and_a_hosted_call_as_plain_answers():
    model = scripted.register("x-echo", lambda m: "echo " + m[-1]["content"])
    local = InProcess(threads=2)
    try:
        custom = Attempt({"model": model, "messages": [{"role": "user", "content": "a b"}]}, 5.0, 1 << 20)
        got = asyncio.run(local.run(custom))
        assert isinstance(got, Answer) and got.text == "echo a b" and got.problem is None
        assert (got.prompt_tokens, got.completion_tokens, got.cost) == (2, 3, 0.0)
        assert local.running is None  # a custom provider needs no thread
        hosted = Attempt({
            "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "q"}],
            "mock_response": "hosted answer", "api_key": "sk-test-not-a-real-key-000",
        }, 5.0, 1 << 20)  # fmt: skip
        got = asyncio.run(local.run(hosted))
        assert got.text == "hosted answer" and got.cost > 0  # litellm's price of gpt-4o-mini
        pool = local.running
        assert pool is not None
    finally:
        local.close()
    assert local.running is None and pool._shutdown


class Flaky:
    """An executor whose every other attempt is lost (as a dead worker's would be)."""

    def __init__(self, inner: InProcess) -> None:
        self.inner, self.attempts, self.closed = inner, 0, False

    async def run(self, attempt: Attempt) -> Answer:
        self.attempts += 1
        if self.attempts % 2 == 1:
            raise ConnectionError("the worker went away")
        return await self.inner.run(attempt)

    def close(self) -> None:
        self.closed = True


def test_the_engine_retries_what_its_executor_lost_and_keeps_cache_and_accounting(tmp_path):
    model = scripted.register("x-flaky", lambda m: "ok " + m[-1]["content"])
    flaky = Flaky(InProcess(threads=2))
    engine = make_engine(cache_dir=tmp_path, ray="", executor=flaky, processes=0, backoff=0.001, max_backoff=0.002)
    try:
        results = _gather(engine, model, 6)
        assert [r.text for r in results] == [f"ok q{i}" for i in range(6)]
        assert sum(r.attempts for r in results) == flaky.attempts == 12
        t = engine.accounting.totals()
        assert (t.calls, t.retries, t.errors, t.cache_hits) == (6, 6, 0, 0)
        again = _gather(engine, model, 6)  # answered from the cache: the executor never sees them
        assert all(r.cached for r in again) and flaky.attempts == 12
        assert engine.accounting.totals().cache_hits == 6
    finally:
        engine.close()
    assert flaky.closed


def _gather(engine: Engine, model: str, n: int) -> list:
    async def go():
        return await asyncio.gather(*(engine.call(req(model, f"q{i}")) for i in range(n)))

    return asyncio.run(go())


def test_without_ray_the_option_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    monkeypatch.delitem(sys.modules, "promptc.runtime.ray_executor", raising=False)
    import promptc.runtime

    monkeypatch.delattr(promptc.runtime, "ray_executor", raising=False)  # as if never imported
    with pytest.raises(ExecutorUnavailable, match=r"Ray is not installed: pip install 'promptc\[ray\]'"):
        make_engine(no_cache=True, ray="local")
    monkeypatch.setenv("PROMPTC_RAY_ADDRESS", "auto")
    with pytest.raises(ExecutorUnavailable, match="promptc\\[ray\\]"):
        make_engine(no_cache=True)
    monkeypatch.setenv("PROMPTC_RAY_ADDRESS", "")
    engine = make_engine(no_cache=True)  # empty: in-process (threads, or worker processes)
    assert type(engine.executor).__name__ in ("InProcess", "Processes")
    engine.close()


def test_nothing_imports_ray_unless_asked():
    script = (
        "import sys\n"
        "import promptc\n"
        "from promptc.runtime import scripted\n"
        "from promptc.runtime.engine import make_engine\n"
        "from promptc.runtime.records import CallRequest\n"
        "import asyncio\n"
        "m = scripted.register('e', lambda ms: 'hi')\n"
        "e = make_engine(no_cache=True)\n"
        "print(asyncio.run(e.call(CallRequest(model=m, messages=({'role': 'user', 'content': 'x'},)))).text)\n"
        "print('ray' in sys.modules, 'promptc.runtime.ray_executor' in sys.modules)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PROMPTC_RAY_ADDRESS"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hi", "False", "False"]
