"""Hosted litellm calls spread over worker processes: `Engine(processes=N)`.

One Python process runs on one core at a time (the GIL), and litellm's Python path costs
~5-7 ms of CPU per call (bench/throughput.py), so one process tops out near 150-200
calls a second whatever the provider's latency. With `processes=N` the engine hands each
hosted call to one of N spawned worker processes (round robin); each runs litellm's
synchronous `completion` on its own thread pool, exactly as the engine does in-process,
and sends back a plain `Answer` or a `RemoteError`. Everything else stays in the
engine: cache, retries and backoff (a `RemoteError` carries the worker's `classify`
verdict and Retry-After), deadlines, accounting. The custom providers (`local/`,
`scripted/`) never go to a worker: they answer in the engine's own process.

What crosses the pipe is the call's keyword arguments (model, messages, decoding, the
api_base / api_key of `extra_params`) and the answer, in memory only; nothing is written
anywhere. A worker starts on the engine's first hosted call (`python -m
promptc.runtime.workers`, a fresh interpreter that imports litellm: a few seconds; the
wait is not counted against the call's deadline), or, with `Engine(processes_from=K)`
(make_engine's default), once K hosted calls are in flight, the engine's threads serving
the calls until the workers are ready (`Workers.is_ready`); it stops with
`Engine.close()`. A worker that dies fails its calls in flight with a retryable
`ConnectionError`; the next call starts a fresh set (a lazily started set: three at
most). Prices given to `providers.register_price` before the workers start are
registered in them too; a worker prices an unpriced model itself (hosted.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from attrs import frozen

from promptc.runtime import hosted, providers
from promptc.runtime.accounting import reported_tokens
from promptc.runtime.failures import RemoteError, blames_provider, classify, describe, remember_secrets
from promptc.runtime.netguard import Guard

log = logging.getLogger(__name__)

START_SECONDS = 120.0  # a worker that has not imported litellm by then is broken


@frozen
class Answer:
    """A hosted call's outcome as a worker reports it. Token counts are the provider's,
    None where it gave no whole number (the engine checks them against the request)."""

    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float


class Workers:
    """N worker processes with a thread pool each; `await complete(kwargs)` from any loop."""

    def __init__(self, processes: int, threads: int, prices: dict[str, tuple[float, float]]) -> None:
        self._conns: list[Connection] = []
        self._procs: list[subprocess.Popen] = []
        self._send_locks: list[threading.Lock] = []
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future, int]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._next = itertools.cycle(range(processes))
        self._ready = [threading.Event() for _ in range(processes)]
        self.broken = False
        for k in range(processes):
            proc, conn = _spawn(threads)
            conn.send(prices)
            self._conns.append(conn)
            self._procs.append(proc)
            self._send_locks.append(threading.Lock())
            threading.Thread(target=self._read, args=(k,), name=f"promptc-worker-reader-{k}", daemon=True).start()

    @property
    def is_ready(self) -> bool:
        """Every worker has imported litellm and none has died."""
        return not self.broken and all(e.is_set() for e in self._ready)

    async def ready(self) -> None:
        """Wait (off the event loop) until every worker has imported litellm."""
        if all(e.is_set() for e in self._ready):
            return
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, lambda: all(e.wait(START_SECONDS) for e in self._ready))
        if not ok or self.broken:
            self.broken = True
            raise ConnectionError("promptc worker processes did not start")

    async def complete(self, kwargs: dict[str, Any], limits: tuple[float | None, int | None] = (None, None)) -> Answer:
        """One attempt in a worker: the `Answer`, or RemoteError / ConnectionError.
        `limits`: the attempt's (seconds, max response bytes), kept in the worker by a
        netguard.Guard, so that its thread stops reading when the engine stops waiting."""
        if self.broken:
            raise ConnectionError("promptc worker process exited")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        cid = next(self._ids)
        k = next(self._next)
        with self._lock:
            self._pending[cid] = (loop, fut, k)
        try:
            with self._send_locks[k]:
                self._conns[k].send((cid, kwargs, limits))
        except (OSError, ValueError) as e:
            with self._lock:
                self._pending.pop(cid, None)
            self.broken = True
            raise ConnectionError(f"promptc worker process unreachable: {e}") from e
        try:
            return await fut
        finally:
            with self._lock:
                self._pending.pop(cid, None)

    def close(self) -> None:
        for k, conn in enumerate(self._conns):
            try:
                with self._send_locks[k]:
                    conn.send(None)
            except (OSError, ValueError):
                pass
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for conn in self._conns:
            conn.close()

    # -- parent side: one reader thread per worker ----------------------------------------

    def _read(self, k: int) -> None:
        conn = self._conns[k]
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg == "ready":
                self._ready[k].set()
                continue
            cid, outcome = msg
            with self._lock:
                entry = self._pending.pop(cid, None)
            if entry is not None:
                _resolve(entry[0], entry[1], _outcome(outcome))
        # the worker is gone: fail what it had in flight, and let the engine start afresh
        self.broken = True
        self._ready[k].set()
        with self._lock:
            lost = [(cid, e) for cid, e in self._pending.items() if e[2] == k]
            for cid, _ in lost:
                del self._pending[cid]
        for _, (loop, fut, _k) in lost:
            _resolve(loop, fut, ConnectionError("promptc worker process exited"))


def _outcome(data: tuple) -> Answer | RemoteError:
    """A worker's reply (plain tuples cross the pipe) as an Answer or a RemoteError."""
    if data[0] == "ok":
        return Answer(*data[1:])
    return RemoteError(*data[1:])


def _resolve(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, outcome: Any) -> None:
    def settle() -> None:
        if fut.done():
            return
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # that loop is closed: nobody waits any more
        pass


def _spawn(threads: int) -> tuple[subprocess.Popen, Connection]:
    """Start `python -m promptc.runtime.workers` with one end of a socket pair.

    A fresh interpreter rather than multiprocessing's spawn, which would import the
    caller's own `__main__` again in the worker (a script without a main guard would run
    twice).
    """
    parent, child = socket.socketpair()
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # the folder promptc is imported from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptc.runtime.workers", str(child.fileno()), str(threads)],
            pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
    finally:
        child.close()
    return proc, Connection(parent.detach())


# --- worker side ----------------------------------------------------------------------------


def serve(conn: Connection, threads: int) -> None:
    """A worker process: answer (id, kwargs) requests until None or the parent goes away."""
    litellm = providers.ensure_litellm()
    prices = conn.recv()
    for model, (inp, out) in prices.items():
        providers.register_price(model, inp, out)
    send_lock = threading.Lock()

    def reply(msg: Any) -> None:
        try:
            with send_lock:
                conn.send(msg)
        except (OSError, ValueError):  # the parent is gone
            pass

    def one(cid: int, kwargs: dict[str, Any], limits: tuple[float | None, int | None] = (None, None)) -> None:
        try:
            resp = hosted.complete(litellm, kwargs, Guard(*limits))
            try:
                text = resp.choices[0].message.content
            except (AttributeError, IndexError, KeyError, TypeError):
                text = None
            prompt_tokens, completion_tokens = reported_tokens(getattr(resp, "usage", None))
            outcome: tuple = (
                "ok", text if isinstance(text, str) else None, prompt_tokens, completion_tokens,
                hosted.cost(litellm, resp, kwargs["model"]),
            )
        except Exception as e:
            retryable, after = classify(e)
            outcome = ("error", describe(e), retryable, after, blames_provider(e))
        reply((cid, outcome))

    reply("ready")
    with ThreadPoolExecutor(threads, thread_name_prefix="promptc-call") as pool:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg is None:
                break
            remember_secrets(msg[1])  # so that this process's errors mask them too
            pool.submit(one, *msg)


__all__ = ["Answer", "RemoteError", "Workers"]

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
