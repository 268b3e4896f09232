"""The engine: the one path every model call takes.

    engine = make_engine()                      # cache in .promptc/cache
    result = await engine.call(CallRequest(model="local/default", messages=(...,)))
    result.ok, result.text, result.error, engine.accounting.summary_line()

`Engine.call` never raises: it answers every `CallRequest` with a `CallResult`.

1. Cache: with a cache and no bypass, a stored answer is returned at once
   (`cached=True`, counted as a cache hit, no new call, no cost).
2. The attempt: litellm, with (model, messages, temperature, max_tokens, seed,
   response_format, timeout), run by the engine's executor (executor.py): in this
   process by default, in worker processes with `processes=N` (procpool.py), on Ray
   actors with `make_engine(ray=...)` (ray_executor.py). In this process, hosted
   providers (anything but `local/` and `scripted/`) are called with litellm's
   synchronous `completion` (through `hosted.complete`, which leaves out the
   per-call work of litellm's that promptc does not use: its success logging when no
   litellm callback is registered, the price search of a model it has no price for) on
   the engine's own bounded thread pool (`threads` workers, one asyncio semaphore per
   event loop in front of it), as DSPy does; the
   custom providers (providers.py), which answer in-process, are awaited with
   `litellm.acompletion`, and their enum `choices` ride along in `extra_body`.
   litellm's and the OpenAI SDK's own retries are switched off: retrying is done here,
   once, for every provider.

   Why threads for hosted calls: hosted.py.
3. Each attempt is bounded by `asyncio.wait_for(timeout)` (not for `local/`: see
   `_attempts`); a hosted call is also bounded inside its thread (netguard.py): its reads
   stop at the same deadline and at `max_response_bytes` (8 MB, PROMPTC_MAX_RESPONSE_BYTES;
   a bigger response is a failed attempt, read no further, never cached), and a call the
   engine gave up on, or that is in flight at `close()`, has its sockets shut down, so
   its thread and connection are free at once and the process exits when its work is
   done. Rate limits (429), server errors (5xx), timeouts, connection errors, and
   responses with no choices, no text or an empty answer are retried up to `retries`
   times (runtime/failures.py classifies them) with exponential backoff (`backoff *
   2**k`, capped at `max_backoff`) and jitter, or after the Retry-After (retry-after-ms)
   the error carries. Every wait ends within the call's deadline (`timeout` times the
   attempts it may make): a Retry-After past it, or past `max_retry_after`, ends the call
   at once, and so does a spent retry budget (breaker.py: a run retries `retry_budget`
   times plus `retry_refill` per answered call). Anything else (bad request,
   authentication, unknown model, missing local weights) fails at once.
   Circuit breaker (breaker.py): after `breaker` calls of one model in a row failed on
   every attempt for the provider's fault, its calls fail at once without a request;
   `engine.tripped` names the model and its last error, `engine.when_tripped(cb)` tells
   the CLI, which ends the run.
   With `processes=N` (or PROMPTC_ENGINE_PROCESSES=N for `make_engine`), hosted calls
   run the same way in N worker processes instead (procpool.py): one process's CPU caps
   it near 150-250 litellm calls a second, N processes can use N cores. `make_engine`
   (the CLI, `promptc.load`) starts 2 of them by default once 8 hosted calls are in
   flight (see `make_engine`). With `ray`, every attempt (the embedded model's too) runs
   on a Ray actor, on this machine or a cluster; the steps above stay here, so a run's
   results, counts, cache hits and budget stops are an in-process run's.
4. The outcome is a `CallResult` with tokens (from the provider's usage, checked by
   accounting.checked_usage: a count that cannot be true is 0 and noted as unknown),
   cost (litellm's price for the model when it knows it, else 0), attempts and seconds;
   a success is stored in the cache. A call that failed after its retries is a result
   with `text=None` and `error` set — the sample fails, the batch goes on.

Endpoints (runtime/endpoint.py): a request's `endpoint` (from its `model` declaration)
gives api_base, the key variable and the timeout; a request without one (the backward
engine's and the optimizer's, which name only a model string) gets the endpoint the
engine was told for that string by `use_models(program)`.

Typed outputs (JSON schemas as `response_format` where the provider takes one): wire.py.

Secrets: requests may carry an api_key in `extra_params`, or name the variable holding
it (`Endpoint.key_env`, read at call time). Every key a call sends is given to
`failures.remember_secret` first, and errors and answers are scrubbed before anything
sees them: no key reaches a log, the cache (which keys on model, messages and decoding
params only), a trace, an output file or the terminal, even when a server echoes it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import time
import weakref
from typing import Any

from attrs import evolve

from promptc.runtime import endpoint as endpoints
from promptc.runtime import procpool, providers, wire
from promptc.runtime.accounting import Accounting
from promptc.runtime.breaker import DEFAULT_RETRY_BUDGET, DEFAULT_RETRY_REFILL, DEFAULT_THRESHOLD, Breaker, Tripped
from promptc.runtime.cache import DEFAULT_DIR, Cache, CachedAnswer, cache_key
from promptc.runtime.executor import Attempt, Executor, ExecutorUnavailable, InProcess, per_loop
from promptc.runtime.failures import blames_provider, classify, describe, is_timeout, remember_secrets
from promptc.runtime.netguard import max_bytes_from_env
from promptc.runtime.records import CallRequest, CallResult, Endpoint
from promptc.runtime.sync import run_sync
from promptc.runtime.wire import Answer, to_response_format  # noqa: F401 - to_response_format's old home

log = logging.getLogger(__name__)

DEFAULT_THREADS = 64  # hosted calls in flight when neither `threads` nor `max_concurrency` is set
MAX_TIMEOUT = 1e6  # seconds: a longer timeout is this one (asyncio cannot schedule 1e300 s)


class Engine:
    """Runs `CallRequest`s through litellm with cache, retries, timeouts and accounting.

    cache: a `Cache`, or None for no caching.
    accounting: where counts go (a fresh `Accounting` if None); `engine.accounting`.
    timeout: seconds per attempt. timeouts: per-model overrides, keyed by the model
        string (`openai/gpt-4o-mini`) or a provider prefix (`openai/`); the longest key
        that matches wins. retries: extra attempts after the first.
    backoff / max_backoff: base and cap (seconds) of the exponential backoff.
    max_retry_after: the longest Retry-After waited for (seconds); a longer one ends the call.
    max_response_bytes: the largest response read (None: PROMPTC_MAX_RESPONSE_BYTES, else
        8 MB); a bigger one is a failed attempt.
    breaker: failed calls of one model in a row that stop the engine asking it (0: never).
    retry_budget / retry_refill: the run's retries before any answer, and the retries each
        answered call adds (breaker.py).
    max_concurrency: if set, at most this many calls in flight (an asyncio semaphore);
        the interpreter bounds samples itself, this bounds the calls across everything.
    threads: worker threads for hosted calls (default: max_concurrency, else
        DEFAULT_THREADS); more hosted calls than this wait their turn before their
        deadline starts. Threads start on demand and stop with `close()`.
    processes: if > 0, hosted calls run in that many worker processes instead of this
        one (see procpool.py): for many calls in flight, where one process's CPU is the
        limit. 0 (the default) keeps everything in-process.
    processes_from: the hosted calls in flight that start the worker processes. 1 (the
        default): the first hosted call starts them and waits until they are ready.
        Above 1 (`make_engine`'s default), hosted calls run on the engine's threads until
        that many are in flight at once and the workers have started; a run that never
        gets there never spawns them.
    extra_params: passed to every litellm call (api_base, api_key, ...).
    executor: where attempts run (executor.py); None: this process (`engine.local`), or
        the worker processes of `processes`. `make_engine(ray=...)` gives Ray actors.
    """

    def __init__(
        self,
        cache: Cache | None = None,
        accounting: Accounting | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        *,
        max_retry_after: float = 60.0,
        max_concurrency: int | None = None,
        extra_params: dict[str, Any] | None = None,
        seed: int | None = None,
        threads: int | None = None,
        processes: int = 0,
        processes_from: int = 1,
        timeouts: dict[str, float] | None = None,
        max_response_bytes: int | None = None,
        breaker: int = DEFAULT_THRESHOLD,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        retry_refill: float = DEFAULT_RETRY_REFILL,
        executor: Executor | None = None,
    ) -> None:
        self.cache = cache
        self.accounting = accounting if accounting is not None else Accounting()
        self.timeout = float(timeout)
        self.timeouts = {k: float(v) for k, v in (timeouts or {}).items()}
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.max_response_bytes = int(max_response_bytes) if max_response_bytes else max_bytes_from_env()
        self.breaker = Breaker(breaker, retry_budget, retry_refill)
        self.max_concurrency = max_concurrency
        self.extra_params = dict(extra_params or {})
        self.endpoints: dict[str, Endpoint] = {}
        self._rng = random.Random(seed)
        self.threads = max(1, int(threads or max_concurrency or DEFAULT_THREADS))
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self.processes = max(0, int(processes))
        self.processes_from = max(1, int(processes_from))
        self.local = InProcess(self.threads)  # this process's executor (executor.py)
        if executor is None and self.processes:
            executor = procpool.Processes(self.processes, self.processes_from, self.local)
        self.executor: Executor = executor if executor is not None else self.local

    def __repr__(self) -> str:
        return f"Engine(cache={self.cache!r}, timeout={self.timeout}, retries={self.retries})"

    # --- public -------------------------------------------------------------------------

    async def call(self, req: CallRequest, *, use_cache: bool = True) -> CallResult:
        """Answer `req`; never raises (a failure is a CallResult with `error`)."""
        start = time.perf_counter()
        try:
            return await self._call(req, use_cache, start)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug here must still not crash a batch
            log.error("engine: unexpected failure: %s", describe(e))
            result = CallResult(text=None, error=f"engine error: {describe(e)}", seconds=time.perf_counter() - start)
            self.accounting.add(req.phase, req.model, calls=1, errors=1)
            return result

    def call_sync(self, req: CallRequest, *, use_cache: bool = True) -> CallResult:
        """Blocking `call` (for scripts and the REPL; inside a running event loop it runs on
        a fresh loop in a worker thread, as `run_sync` does)."""
        return run_sync(self.call(req, use_cache=use_cache))

    def use_models(self, program: Any, environ: dict[str, str] | None = None) -> None:
        """Learn the endpoints of `program`'s model declarations, for requests that name
        only a model string. Two declarations of one string at two endpoints: the first
        wins for such requests (the workflow's own calls always carry theirs)."""
        for m in program.models:
            s = endpoints.settings(m, environ)
            if s.endpoint is None:
                continue
            known = self.endpoints.setdefault(s.model, s.endpoint)
            if known != s.endpoint:
                log.warning("model %s is declared at two endpoints; unrouted calls go to the first", s.model)

    @property
    def tripped(self) -> Tripped | None:
        """The first model the circuit breaker stopped asking (None while all are asked)."""
        return self.breaker.tripped

    def when_tripped(self, callback: Any) -> Any:
        """Call `callback(tripped)` when the breaker stops asking a model; returns a
        function that stops listening."""
        return self.breaker.listen(callback)

    def close(self) -> None:
        """Close the cache and the executor: hosted calls still in flight are stopped (their
        sockets are shut down: the threads end at once), the threads and any worker
        processes or actors too. A later call starts them again."""
        if self.executor is not self.local:
            self.executor.close()
        self.local.close()
        if self.cache is not None:
            self.cache.close()

    # --- internals ----------------------------------------------------------------------

    async def _call(self, req: CallRequest, use_cache: bool, start: float) -> CallResult:
        if req.endpoint is None and req.model in self.endpoints:
            req = evolve(req, endpoint=self.endpoints[req.model])
        key = None
        if self.cache is not None and use_cache:
            key = cache_key(req)
            hit = self._cache_get(key)
            if hit is not None and hit.text:  # an empty answer (stored by an older promptc) is a miss
                self.accounting.add(req.phase, req.model, cache_hits=1)
                return CallResult(
                    text=hit.text, prompt_tokens=hit.prompt_tokens, completion_tokens=hit.completion_tokens,
                    cost=0.0, cached=True, attempts=0, seconds=time.perf_counter() - start,
                )
        stopped = self.breaker.is_open(req.model)
        if stopped is not None:  # no request: neither a call nor a cache hit
            return CallResult(text=None, error=stopped.message(), attempts=0, seconds=time.perf_counter() - start)
        sem = self._semaphore()
        if sem is None:
            result, blame = await self._attempts(req, start)
        else:
            async with sem:
                result, blame = await self._attempts(req, start)
        self.accounting.add(
            req.phase, req.model, calls=1, errors=0 if result.ok else 1, retries=result.attempts - 1,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens, cost=result.cost,
        )
        if result.ok:
            self.breaker.succeeded(req.model)
        elif self.breaker.failed(req.model, result.error or "", blame) is not None:
            log.info("%s", self.breaker.is_open(req.model).message())  # the CLI prints it
        if result.ok and result.text is not None and self.cache is not None and use_cache:
            self._cache_put(key or cache_key(req), req.model, result)
        return result

    def timeout_for(self, model: str) -> float:
        """The per-attempt timeout of calls to `model` (see `timeouts`)."""
        keys = [k for k in self.timeouts if model == k or (k.endswith("/") and model.startswith(k))]
        return self.timeouts[max(keys, key=len)] if keys else self.timeout

    def _semaphore(self) -> asyncio.Semaphore | None:
        if not self.max_concurrency:
            return None
        return per_loop(self._semaphores, self.max_concurrency)

    async def attempt(self, attempt: Attempt) -> Answer:
        """Run one attempt on this engine's own process (its `InProcess` executor), whatever
        its executor: what a Ray actor's engine does with the attempts it is sent."""
        return await self.local.run(attempt)

    async def _attempts(self, req: CallRequest, start: float) -> tuple[CallResult, bool]:
        """The call's outcome, and whether its failure blames the provider (breaker.py)."""
        litellm = providers.ensure_litellm()
        try:
            kwargs = self._kwargs(req, litellm)
        except ValueError as e:  # the declared key variable is not set
            return CallResult(text=None, error=str(e), attempts=1, seconds=time.perf_counter() - start), False
        remember_secrets(kwargs)  # before anything can echo them
        # The in-process model cannot be cancelled, and its requests queue on one worker
        # thread: a deadline would count queueing time and a retry would queue the same
        # generation twice. Its calls are bounded by max_tokens instead.
        limit = kwargs["timeout"] = min(float(kwargs["timeout"]), MAX_TIMEOUT)
        timeout = None if providers.provider_of(req.model) == "local" else limit
        deadline = None if timeout is None else time.monotonic() + timeout * (self.retries + 1)
        one = Attempt(kwargs, timeout, self.max_response_bytes)
        is_hosted = one.hosted
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self.executor.run(one)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_timeout(e):  # the engine's deadline, the client's or netguard's: one message
                    e = TimeoutError(f"no answer within {limit:g}s")
                (retryable, after), what, blame = classify(e), describe(e), blames_provider(e)
            else:
                result = self._result(req, answer, attempt, start)
                if result.ok:
                    return result, False
                # an empty or malformed response: a failed attempt, never cached; from a hosted
                # provider it says the provider is broken, from the embedded model only this prompt
                retryable, after, what, blame = True, None, result.error or "", is_hosted
            delay, why = self._retry(attempt, retryable, after, deadline)
            if delay is None:
                if why:
                    what = f"{why}: {what}"
                log.info("call to %s failed: %s", req.model, what)
                return CallResult(text=None, error=what, attempts=attempt, seconds=time.perf_counter() - start), blame
            log.debug("call to %s: %s; retry %d in %.3fs", req.model, what, attempt, delay)
            await asyncio.sleep(delay)

    def _retry(
        self, attempt: int, retryable: bool, after: float | None, deadline: float | None
    ) -> tuple[float | None, str]:
        """(seconds to wait before the next attempt, "") or (None, why the call ends here)."""
        gave_up = f"gave up after {attempt} attempts" if attempt > 1 else "gave up"
        if not retryable:
            return None, ""
        if attempt > self.retries:
            return None, gave_up if attempt > 1 else ""
        if after is not None and after > self.max_retry_after:
            return None, f"{gave_up}: the provider asks to wait {after:g}s (more than {self.max_retry_after:g}s)"
        delay = self._delay(attempt, after)
        if deadline is not None and time.monotonic() + delay >= deadline:
            return None, f"{gave_up}: a wait of {delay:.3g}s would pass the call's deadline"
        if not self.breaker.may_retry():
            return None, f"{gave_up}: the run's retry budget is spent"
        return delay, ""

    def _kwargs(self, req: CallRequest, litellm: Any = None) -> dict[str, Any]:
        timeout = req.endpoint.timeout if req.endpoint is not None and req.endpoint.timeout else self.timeout_for(req.model)
        return wire.litellm_kwargs(req, self.extra_params, timeout, litellm)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)  # over the cap: see _retry
        cap = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    def _result(self, req: CallRequest, answer: Answer, attempts: int, start: float) -> CallResult:
        """The call's result from its answer; an empty or malformed one is a result with `error`."""
        result, believable = wire.read_response(req, answer)
        if not believable:
            self.accounting.note_unknown_usage(req.model)
        return evolve(result, attempts=attempts, seconds=time.perf_counter() - start)

    def _cache_get(self, key: str) -> CachedAnswer | None:
        try:
            return self.cache.get(key) if self.cache is not None else None
        except Exception as e:  # a broken cache costs a call, never a crash (Cache warns itself)
            log.debug("cache read failed: %s", e)
            return None

    def _cache_put(self, key: str, model: str, result: CallResult) -> None:
        try:
            assert self.cache is not None and result.text is not None
            self.cache.put(key, model, CachedAnswer(result.text, result.prompt_tokens, result.completion_tokens, result.cost))
        except Exception as e:
            log.debug("cache write failed: %s", e)


PROCESSES_ENV = "PROMPTC_ENGINE_PROCESSES"
RAY_ENV = "PROMPTC_RAY_ADDRESS"  # make_engine's `ray` when none is given
AUTO_PROCESSES = 2  # make_engine's worker processes when the variable is unset ...
AUTO_FROM = 8  # ... started once this many hosted calls are in flight


def make_engine(
    cache_dir: str | os.PathLike[str] = DEFAULT_DIR, no_cache: bool = False, ray: Any = None, **kw: Any
) -> Engine:
    """An Engine with the on-disk cache at `cache_dir` (none with no_cache=True).

    `ray`: run the model calls on Ray actors (ray_executor.py): a cluster address
    ("local" starts one on this machine, "auto", "HOST:PORT", "ray://HOST:PORT") or a
    `RayTarget` (address, actors, CPUs per actor, per-actor base URLs). None (the default)
    reads PROMPTC_RAY_ADDRESS; unset or empty, calls run in this process. The cluster is
    joined and the actors started here, before any call: an unreachable cluster, or Ray
    not installed, is an `ExecutorUnavailable` with a one-line message.

    `processes` defaults to the PROMPTC_ENGINE_PROCESSES environment variable: how the
    CLI and `promptc.load` spread hosted calls over worker processes (N: always N
    processes; 0: none). A value that is not a whole number is reported (a warning naming
    the variable) and ignored: a tuning knob must not stop a run. Unset (or ignored), the
    engine gets AUTO_PROCESSES worker processes on a machine with at least that many
    usable cores, started once AUTO_FROM hosted calls are in flight (`processes_from`):
    measured on 2 cores (bench/throughput.py), 2 processes bring wall / ideal at 32 and
    64 in flight from 2.25 and 3.5 to 1.3-1.4 and 2.0-2.4, and a run with fewer calls in
    flight never spawns them.
    """
    if ray is None:
        ray = os.environ.get(RAY_ENV, "").strip() or None
    if ray:
        kw["executor"] = ray_executor(ray, int(kw.get("threads") or kw.get("max_concurrency") or DEFAULT_THREADS))
        kw["processes"] = 0
    if "processes" not in kw:
        processes = _env_processes()
        if processes is None:
            processes = AUTO_PROCESSES if _cores() >= AUTO_PROCESSES else 0
            kw.setdefault("processes_from", AUTO_FROM)
        kw["processes"] = processes
    try:
        cache = None if no_cache else Cache(cache_dir)
    except BaseException:
        if "executor" in kw:
            kw["executor"].close()
        raise
    return Engine(cache=cache, **kw)


def ray_executor(option: Any, threads: int) -> Executor:
    """The executor of `make_engine(ray=option)`: Ray actors, each with an Engine of
    `threads` hosted-call threads built in its own process."""
    try:
        from promptc.runtime import ray_executor as on_ray  # Ray is imported only when asked for
    except ImportError:
        raise ExecutorUnavailable("Ray is not installed: pip install 'promptc[ray]'") from None
    factory = functools.partial(Engine, threads=threads, processes=0)
    try:
        target = on_ray.target_of(option)
    except ValueError as e:
        raise ExecutorUnavailable(str(e)) from None
    return on_ray.RayExecutor(target, factory, threads)


def _env_processes() -> int | None:
    """PROMPTC_ENGINE_PROCESSES as a number, None when unset or not a whole number."""
    raw = os.environ.get(PROCESSES_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        log.warning("%s=%r ignored: it must be a whole number of worker processes (0 for none)", PROCESSES_ENV, raw)
        return None
    return value


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
