"""Where a model call runs: the engine's executors.

    answer = await executor.run(attempt)   # one attempt: an Answer (wire.py), or it raises
    executor.close()

The engine (engine.py) does everything around an attempt in its own process, whatever
the executor: the cache, the circuit breaker, retries and backoff, deadlines, accounting;
and the interpreter, the optimizer and the budgets above it stay there too. An executor
only runs one attempt of one call, given as an `Attempt` (litellm's arguments, built by
wire.litellm_kwargs in the engine; the deadline; the byte limit), and answers with a
plain `Answer` or raises what the call raised, which failures.classify reads.

Two executors, one interface:

- `InProcess(threads)`, the engine's default: a hosted call runs litellm's synchronous
  `completion` on the executor's bounded thread pool (hosted.py says why threads), in a
  netguard.Guard that stops its reads at the deadline, at the byte limit, or when the
  engine stops waiting; a call to a custom provider (`local/`, `scripted/`, which answer
  in this process: the embedded model through local.py's pool of model instances) is
  awaited with `litellm.acompletion`.
- `RayExecutor` (ray_executor.py, `make_engine(ray=...)`): each attempt goes to one of a
  set of Ray actors, on this machine or a cluster; each actor holds an Engine whose
  `InProcess` executor runs it there.

An attempt that waits for a free thread first does so before its deadline starts:
waiting for one is not the provider's time.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from attrs import frozen

from promptc.runtime import hosted, providers, wire
from promptc.runtime.failures import RemoteError, blames_provider, classify, describe
from promptc.runtime.netguard import Guard


@frozen
class Attempt:
    """One attempt of a model call.

    kwargs: litellm's arguments (model, messages, decoding, api_base / api_key, ...).
    timeout: seconds the attempt may take; None for none (the embedded model, whose
        generation cannot be cancelled: it is bounded by max_tokens instead).
    max_bytes: the largest hosted response read (netguard.py).
    """

    kwargs: dict[str, Any]
    timeout: float | None
    max_bytes: int

    @property
    def model(self) -> str:
        return self.kwargs["model"]

    @property
    def hosted(self) -> bool:
        """Whether the call goes to a hosted provider (not `local/` or `scripted/`)."""
        return not providers.is_custom(self.model)


@frozen
class Failed:
    """An attempt that raised in another process: its `describe`, `classify` and
    `blames_provider` verdicts there (plain values that pickle; exceptions may not)."""

    message: str
    retryable: bool
    retry_after: float | None
    blames: bool

    @classmethod
    def of(cls, e: BaseException) -> Failed:
        retryable, after = classify(e)
        return cls(describe(e), retryable, after, blames_provider(e))

    def error(self) -> RemoteError:
        """The exception the engine reads (failures.classify keeps the verdicts)."""
        return RemoteError(self.message, self.retryable, self.retry_after, self.blames)


class ExecutorUnavailable(RuntimeError):
    """An executor cannot start: its dependency is missing, its cluster cannot be reached
    (a one-line message that says what to do)."""


class Executor(Protocol):
    """Runs attempts (module doc)."""

    async def run(self, attempt: Attempt) -> wire.Answer: ...

    def close(self) -> None: ...


class InProcess:
    """Attempts in this process: hosted calls on `threads` worker threads (started on
    demand, stopped by `close`), custom providers awaited on the running loop."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self._guards: set[Guard] = set()  # hosted calls in flight on the threads
        self._lock = threading.Lock()
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, attempt: Attempt) -> wire.Answer:
        litellm = providers.ensure_litellm()
        if not attempt.hosted:
            resp = await asyncio.wait_for(litellm.acompletion(**attempt.kwargs), timeout=attempt.timeout)
        else:
            async with per_loop(self._slots, self.threads):
                resp = await self._on_thread(litellm, attempt)
        return wire.answer_of(litellm, resp, attempt.model)

    async def _on_thread(self, litellm: Any, attempt: Attempt) -> Any:
        """One hosted attempt on the threads, within a `Guard` (netguard.py) that frees the
        thread and its connection when the engine stops waiting."""
        guard = Guard(attempt.timeout, attempt.max_bytes)
        with self._lock:
            self._guards.add(guard)
        try:
            call = functools.partial(hosted.complete, litellm, attempt.kwargs, guard)
            loop = asyncio.get_running_loop()
            return await asyncio.wait_for(loop.run_in_executor(self.pool(), call), attempt.timeout)
        except BaseException:
            guard.abort()  # a timeout or a cancellation: the thread must not read on
            raise
        finally:
            with self._lock:
                self._guards.discard(guard)

    def pool(self) -> ThreadPoolExecutor:
        """The thread pool (started here if it is not running)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="promptc-call")
            return self._pool

    @property
    def running(self) -> ThreadPoolExecutor | None:
        """The thread pool if it runs, else None."""
        return self._pool

    def close(self) -> None:
        """Stop the hosted calls in flight (their sockets are shut down: the threads end
        at once) and the threads; a later attempt starts them again."""
        with self._lock:
            pool, self._pool = self._pool, None
            guards, self._guards = list(self._guards), set()
        for guard in guards:
            guard.abort()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def per_loop(table: weakref.WeakKeyDictionary, size: int) -> asyncio.Semaphore:
    """The semaphore of `size` for the running loop (asyncio primitives belong to one loop)."""
    loop = asyncio.get_running_loop()
    sem = table.get(loop)
    if sem is None:
        sem = table[loop] = asyncio.Semaphore(size)
    return sem
