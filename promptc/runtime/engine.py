"""The engine: the one path every model call takes.

    engine = make_engine()                      # cache in .promptc/cache
    result = await engine.call(CallRequest(model="local/default", messages=(...,)))
    result.ok, result.text, result.error, engine.accounting.summary_line()

`Engine.call` never raises: it answers every `CallRequest` with a `CallResult`.

1. Cache: with a cache and no bypass, a stored answer is returned at once
   (`cached=True`, counted as a cache hit, no new call, no cost).
2. litellm, with (model, messages, temperature, max_tokens, seed, response_format,
   timeout). Hosted providers (anything but `local/` and `scripted/`) are called with
   litellm's synchronous `completion` (through `hosted.complete`, which leaves out the
   per-call work of litellm's that promptc does not use: its success logging when no
   litellm callback is registered, the price search of a model it has no price for) on
   the engine's own bounded thread pool (`threads` workers, one asyncio semaphore per
   event loop in front of it), as DSPy does; the
   custom providers (providers.py), which answer in-process, are awaited with
   `litellm.acompletion`, and their enum `choices` ride along in `extra_body`.
   litellm's and the OpenAI SDK's own retries are switched off: retrying is done here,
   once, for every provider.

   Why threads for hosted calls (bench/throughput.py, litellm 1.110.2, 2 cores):
   `litellm.acompletion` runs its synchronous request setup on the event loop's default
   executor, which has min(32, cores + 4) threads (6 here), and hands results back and
   forth between the loop and those threads under the GIL: from 8 calls in flight on,
   each call queues there, so per-call latency grows long before the CPU runs out
   (measured interleaved on one server: wall / ideal 1.6-1.75 -> 1.24-1.40 at 8 in
   flight, 4.4-4.7 -> 2.3-2.4 at 32, 9-11 -> 5-7 at 64). The synchronous path on a
   pool sized to the calls in flight (DSPy's design) has no such queue. Its CPU per
   call is litellm's (~5-7 ms here), ~10-20 % below DSPy's when DSPy goes through
   litellm (hosted.py), about twice DSPy's own lm15 client (bench/throughput.py).
3. Each attempt is bounded by `asyncio.wait_for(timeout)` (not for `local/`: see
   `_attempts`); a hosted call is also bounded inside its thread by the HTTP client's
   own timeout (the same value), so a thread that outlived its deadline ends soon after.
   Rate limits (429), server errors (5xx), timeouts and connection errors
   (runtime/failures.py classifies them) are retried up to `retries` times with
   exponential backoff (`backoff * 2**k`, capped at `max_backoff`) and full jitter; a
   Retry-After (or retry-after-ms) header on the error is honoured instead, up to
   `max_retry_after`. A response with no choices, no text content or an empty answer
   is a failed attempt too, retried the same way and never cached. Anything else (bad
   request, authentication, unknown model, missing local weights) fails at once.
   With `processes=N` (or PROMPTC_ENGINE_PROCESSES=N for `make_engine`), hosted calls
   run the same way in N worker processes instead (workers.py): one process's CPU caps
   it near 150-200 litellm calls a second, N processes can use N cores. `make_engine`
   (the CLI, `promptc.load`) starts 2 of them by default once 8 hosted calls are in
   flight (see `make_engine`).
4. The outcome is a `CallResult` with tokens (from the provider's usage), cost
   (litellm's price for the model when it knows it, else 0), attempts and seconds; a
   success is stored in the cache. A call that failed after its retries is a result
   with `text=None` and `error` set — the sample fails, the batch goes on.

Endpoints (runtime/endpoint.py): a request's `endpoint` (from its `model` declaration)
gives api_base, the key variable and the timeout; a request without one (the backward
engine's and the optimizer's, which name only a model string) gets the endpoint the
engine was told for that string by `use_models(program)`.

Typed outputs: record/list/json outputs send their JSON schema as `response_format`, and
enum outputs a one-field object schema (`endpoint.enum_schema`, unwrapped from the reply),
where the provider takes one (`endpoint.supports_schema`); elsewhere the prompt's JSON
instruction and the tolerant parser do the work.

Secrets: requests may carry an api_key in `extra_params`, or name the variable holding
it (`Endpoint.key_env`, read at call time); keys are never logged, stored in the cache
(which keys on model, messages and decoding params only) or left in error messages
(they are scrubbed).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from attrs import evolve

from promptc.runtime import endpoint as endpoints
from promptc.runtime import hosted, providers, workers
from promptc.runtime.accounting import Accounting
from promptc.runtime.cache import DEFAULT_DIR, Cache, CachedAnswer, cache_key
from promptc.runtime.failures import classify, describe
from promptc.runtime.records import CallRequest, CallResult, Endpoint

log = logging.getLogger(__name__)

DEFAULT_THREADS = 64  # hosted calls in flight when neither `threads` nor `max_concurrency` is set


class Engine:
    """Runs `CallRequest`s through litellm with cache, retries, timeouts and accounting.

    cache: a `Cache`, or None for no caching.
    accounting: where counts go (a fresh `Accounting` if None); `engine.accounting`.
    timeout: seconds per attempt. timeouts: per-model overrides, keyed by the model
        string (`openai/gpt-4o-mini`) or a provider prefix (`openai/`); the longest key
        that matches wins. retries: extra attempts after the first.
    backoff / max_backoff: base and cap (seconds) of the exponential backoff.
    max_retry_after: the longest Retry-After honoured (seconds).
    max_concurrency: if set, at most this many calls in flight (an asyncio semaphore);
        the interpreter bounds samples itself, this bounds the calls across everything.
    threads: worker threads for hosted calls (default: max_concurrency, else
        DEFAULT_THREADS); more hosted calls than this wait their turn before their
        deadline starts. Threads start on demand and stop with `close()`.
    processes: if > 0, hosted calls run in that many worker processes instead of this
        one (see workers.py): for many calls in flight, where one process's CPU is the
        limit. 0 (the default) keeps everything in-process.
    processes_from: the hosted calls in flight that start the worker processes. 1 (the
        default): the first hosted call starts them and waits until they are ready.
        Above 1 (`make_engine`'s default), hosted calls run on the engine's threads until
        that many are in flight at once and the workers have started; a run that never
        gets there never spawns them.
    extra_params: passed to every litellm call (api_base, api_key, ...).
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
    ) -> None:
        self.cache = cache
        self.accounting = accounting if accounting is not None else Accounting()
        self.timeout = float(timeout)
        self.timeouts = {k: float(v) for k, v in (timeouts or {}).items()}
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.max_concurrency = max_concurrency
        self.extra_params = dict(extra_params or {})
        self.endpoints: dict[str, Endpoint] = {}
        self._rng = random.Random(seed)
        self.threads = max(1, int(threads or max_concurrency or DEFAULT_THREADS))
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self.processes = max(0, int(processes))
        self.processes_from = max(1, int(processes_from))
        self._hosted_in_flight = 0
        self._broken_pools = 0  # worker pools that died; started lazily, 3 are the last
        self._pool: ThreadPoolExecutor | None = None
        self._workers: workers.Workers | None = None  # started on the first hosted call
        self._pool_lock = threading.Lock()

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
            log.exception("engine: unexpected failure")
            result = CallResult(text=None, error=f"engine error: {describe(e)}", seconds=time.perf_counter() - start)
            self.accounting.add(req.phase, req.model, calls=1, errors=1)
            return result

    def call_sync(self, req: CallRequest, *, use_cache: bool = True) -> CallResult:
        """Blocking `call` (for scripts and the REPL; not from inside an event loop)."""
        return asyncio.run(self.call(req, use_cache=use_cache))

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

    def close(self) -> None:
        """Close the cache, stop the hosted-call threads (calls still running finish) and
        the worker processes."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
            procs, self._workers = self._workers, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if procs is not None:
            procs.close()
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
        sem = self._semaphore()
        if sem is None:
            result = await self._attempts(req, start)
        else:
            async with sem:
                result = await self._attempts(req, start)
        self.accounting.add(
            req.phase, req.model, calls=1, errors=0 if result.ok else 1, retries=result.attempts - 1,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens, cost=result.cost,
        )
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
        return _per_loop(self._semaphores, self.max_concurrency)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="promptc-call")
            return self._pool

    def _worker_pool(self) -> workers.Workers:
        with self._pool_lock:
            if self._workers is not None and self._workers.broken:
                stale, self._workers = self._workers, None
                self._broken_pools += 1
                threading.Thread(target=stale.close, daemon=True).start()
            if self._workers is None:
                self._workers = workers.Workers(self.processes, self.threads, providers.registered_prices())
            return self._workers

    async def _send(self, litellm: Any, kwargs: dict[str, Any], timeout: float | None, is_hosted: bool) -> Any:
        """One attempt: the provider's response (or a workers.Answer), or its exception."""
        if not is_hosted:
            return await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=timeout)
        with self._pool_lock:
            self._hosted_in_flight += 1
        try:
            pool = await self._ready_workers() if self.processes else None
            # A free slot first, then the deadline: waiting for one is not the provider's time.
            async with _per_loop(self._slots, self.threads):
                if pool is not None:
                    return await asyncio.wait_for(pool.complete(kwargs), timeout)
                call = functools.partial(hosted.complete, litellm, kwargs)
                return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self._executor(), call), timeout)
        finally:
            with self._pool_lock:
                self._hosted_in_flight -= 1

    async def _ready_workers(self) -> workers.Workers | None:
        """The worker processes for a hosted call, or None for the engine's threads (see
        `processes_from`)."""
        if self.processes_from <= 1:
            pool = self._worker_pool()
            await pool.ready()  # starting the workers is not the provider's time
            return pool
        if self._workers is None and (self._hosted_in_flight < self.processes_from or self._broken_pools >= 3):
            return None
        pool = self._worker_pool()
        return pool if pool.is_ready else None

    async def _attempts(self, req: CallRequest, start: float) -> CallResult:
        litellm = providers.ensure_litellm()
        try:
            kwargs = self._kwargs(req, litellm)
        except ValueError as e:  # the declared key variable is not set
            return CallResult(text=None, error=str(e), attempts=1, seconds=time.perf_counter() - start)
        # The in-process model cannot be cancelled, and its requests queue on one worker
        # thread: a deadline would count queueing time and a retry would queue the same
        # generation twice. Its calls are bounded by max_tokens instead.
        limit = kwargs["timeout"]
        timeout = None if providers.provider_of(req.model) == "local" else limit
        is_hosted = not providers.is_custom(req.model)
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._send(litellm, kwargs, timeout, is_hosted)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
                    e = TimeoutError(f"no answer within {limit:g}s")
                retryable, after = classify(e)
                if not retryable or attempt > self.retries:
                    what = describe(e)
                    if retryable:
                        what = f"gave up after {attempt} attempts: {what}"
                    log.info("call to %s failed: %s", req.model, what)
                    return CallResult(text=None, error=what, attempts=attempt, seconds=time.perf_counter() - start)
                delay = self._delay(attempt, after)
                log.debug("call to %s: %s; retry %d in %.3fs", req.model, type(e).__name__, attempt, delay)
                await asyncio.sleep(delay)
                continue
            result = self._result(litellm, req, resp, attempt, start)
            if result.ok:
                return result
            # an empty or malformed response: a failed call, retried, never cached
            if attempt > self.retries:
                what = f"gave up after {attempt} attempts: {result.error}" if attempt > 1 else result.error
                log.info("call to %s failed: %s", req.model, what)
                return CallResult(text=None, error=what, attempts=attempt, seconds=time.perf_counter() - start)
            await asyncio.sleep(self._delay(attempt, None))

    def _kwargs(self, req: CallRequest, litellm: Any = None) -> dict[str, Any]:
        ep = req.endpoint
        kwargs: dict[str, Any] = {
            **self.extra_params,
            **endpoints.litellm_params(ep, req.model),
            "model": req.model,
            "messages": [dict(m) for m in req.messages],
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
            "timeout": ep.timeout if ep is not None and ep.timeout else self.timeout_for(req.model),
            "num_retries": 0,
            "max_retries": 0,
        }
        if req.top_p is not None:
            kwargs["top_p"] = req.top_p
        if providers.is_custom(req.model):
            if req.response_format is not None:
                kwargs["response_format"] = to_response_format(req.response_format)
            providers.register_price(req.model)
            kwargs["extra_body"] = {"promptc": {"choices": list(req.choices)}}
        elif (req.response_format is not None or req.choices) and endpoints.supports_schema(
            litellm or providers.ensure_litellm(), req.model, ep
        ):
            schema = req.response_format if req.response_format is not None else endpoints.enum_schema(req.choices)
            kwargs["response_format"] = to_response_format(schema)
        return kwargs

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        cap = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    def _result(self, litellm: Any, req: CallRequest, resp: Any, attempts: int, start: float) -> CallResult:
        """The answer of a response; an empty or malformed one is a result with `error`."""
        if isinstance(resp, workers.Answer):
            text = resp.text
            if text and req.choices and req.response_format is None and not providers.is_custom(req.model):
                text = endpoints.unwrap_enum(text)  # as below: the worker returns the raw reply
            if not isinstance(text, str) or text == "":
                what = "an empty answer" if text == "" else "a response with no text content"
                return CallResult(text=None, error=f"{what} from {req.model}", attempts=attempts,
                                  seconds=time.perf_counter() - start)
            return CallResult(
                text=text, prompt_tokens=resp.prompt_tokens,
                completion_tokens=resp.completion_tokens, cost=resp.cost,
                attempts=attempts, seconds=time.perf_counter() - start,
            )
        try:
            choices = resp.choices
            text = choices[0].message.content if choices else None
            problem = "a response with no choices" if not choices else None
        except (AttributeError, IndexError, KeyError, TypeError):
            text, problem = None, "a malformed response (no message in its first choice)"
        if problem is None and not isinstance(text, str):
            problem = "a response with no text content"
        elif problem is None and text == "":
            problem = "an empty answer"
        if problem is not None:
            return CallResult(text=None, error=f"{problem} from {req.model}", attempts=attempts, seconds=time.perf_counter() - start)
        usage = getattr(resp, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = 0.0 if providers.is_custom(req.model) else hosted.cost(litellm, resp, req.model)
        if text and req.choices and req.response_format is None and not providers.is_custom(req.model):
            text = endpoints.unwrap_enum(text)  # sent as enum_schema, or free text: both fine
        return CallResult(
            text=text,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost,
            attempts=attempts, seconds=time.perf_counter() - start,
        )

    def _cache_get(self, key: str) -> CachedAnswer | None:
        try:
            return self.cache.get(key) if self.cache is not None else None
        except Exception as e:  # a broken cache costs a call, never a crash
            log.warning("cache read failed: %s", e)
            return None

    def _cache_put(self, key: str, model: str, result: CallResult) -> None:
        try:
            assert self.cache is not None and result.text is not None
            self.cache.put(key, model, CachedAnswer(result.text, result.prompt_tokens, result.completion_tokens, result.cost))
        except Exception as e:
            log.warning("cache write failed: %s", e)


def _per_loop(table: weakref.WeakKeyDictionary, size: int) -> asyncio.Semaphore:
    """The semaphore of `size` for the running loop (asyncio primitives belong to one loop)."""
    loop = asyncio.get_running_loop()
    sem = table.get(loop)
    if sem is None:
        sem = table[loop] = asyncio.Semaphore(size)
    return sem


PROCESSES_ENV = "PROMPTC_ENGINE_PROCESSES"
AUTO_PROCESSES = 2  # make_engine's worker processes when the variable is unset ...
AUTO_FROM = 8  # ... started once this many hosted calls are in flight


def make_engine(cache_dir: str | os.PathLike[str] = DEFAULT_DIR, no_cache: bool = False, **kw: Any) -> Engine:
    """An Engine with the on-disk cache at `cache_dir` (none with no_cache=True).

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
    if "processes" not in kw:
        processes = _env_processes()
        if processes is None:
            processes = AUTO_PROCESSES if _cores() >= AUTO_PROCESSES else 0
            kw.setdefault("processes_from", AUTO_FROM)
        kw["processes"] = processes
    cache = None if no_cache else Cache(cache_dir)
    return Engine(cache=cache, **kw)


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


def to_response_format(schema: dict) -> dict:
    """The litellm/OpenAI response_format for a JSON schema (already wrapped ones pass)."""
    if schema.get("type") in ("json_schema", "json_object") and ("json_schema" in schema or schema["type"] == "json_object"):
        return schema
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
