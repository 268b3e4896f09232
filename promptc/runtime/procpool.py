"""Hosted calls in worker processes on this machine: `Engine(processes=N)`.

One Python process runs on one core at a time (the GIL), and litellm's Python path costs
~4-7 ms of CPU per call (bench/throughput.py), so one process tops out near 150-250
calls a second whatever the provider's latency. With `processes=N` the engine's executor
is `Processes`: each hosted attempt goes to one of N worker processes (round robin),
which runs litellm's synchronous `completion` there (hosted.complete, within a
netguard.Guard of the attempt's deadline and byte limit) and answers with a plain
`Answer`, or a `Failed` carrying the worker's `classify` verdict. Everything else stays
in the engine (cache, retries, deadlines, accounting); the custom providers (`local/`,
`scripted/`) answer in the engine's own process.

The pool is built on the standard library's `multiprocessing.managers`, not on a
protocol of promptc's own: each worker serves one `Caller` object from a manager server
on 127.0.0.1 (authenticated with a random key given on its stdin), and the engine is the
manager's client. Each of the engine's threads calls `Caller.run` through its own
connection (a manager proxy keeps one per thread), which the server serves on a thread
of its own, so a worker has as many attempts in flight as engine threads wait on it.
Calls in flight wait on the engine's threads (`threads`), the same pool in-process
hosted calls use.

A worker is a fresh interpreter (`python -m promptc.runtime.procpool`) rather than one of
multiprocessing's spawned children, which import the caller's own `__main__` again (a
script without a main guard would run twice). It starts on the first hosted call (it
imports litellm: seconds; the wait is not counted against the call's deadline), or,
with `processes_from=K` (make_engine's default), once K hosted calls are in flight, the
engine's threads serving the calls until the workers are ready. A worker that dies
fails its calls in flight with a retryable ConnectionError; the next call starts a fresh
set (a lazily started set: three at most). A worker exits when the engine closes, or
when the engine's process is gone (its stdin closes). Prices given to
`providers.register_price` before the workers start are registered in them too.

Why not Ray, or `concurrent.futures.ProcessPoolExecutor`: a ProcessPoolExecutor worker
runs one task at a time, so 64 hosted calls in flight would take 64 processes; a local
Ray actor pool (ray_executor.py) serves the same calls at a higher CPU cost per call
(docs/scale.md has the numbers). Ray is how calls leave the machine.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import weakref
from multiprocessing.managers import BaseManager, BaseProxy
from pathlib import Path
from typing import Any

from promptc.runtime import hosted, providers, wire
from promptc.runtime.executor import Attempt, Failed, InProcess, per_loop
from promptc.runtime.failures import remember_secrets
from promptc.runtime.netguard import Guard

log = logging.getLogger(__name__)

START_SECONDS = 120.0  # a worker that has not imported litellm by then is broken


class Processes:
    """The executor of `Engine(processes=N)`: hosted attempts in N worker processes (from
    `processes_from` hosted calls in flight on), anything else on `local`."""

    def __init__(self, processes: int, processes_from: int, local: InProcess) -> None:
        self.processes, self.processes_from, self.local = processes, max(1, processes_from), local
        self.threads = local.threads
        self.workers: Workers | None = None  # started on the first hosted call (or the K-th in flight)
        self._broken_pools = 0  # worker pools that died; started lazily, 3 are the last
        self._in_flight = 0
        self._lock = threading.Lock()
        self._slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def run(self, attempt: Attempt) -> wire.Answer:
        if not attempt.hosted:
            return await self.local.run(attempt)
        with self._lock:
            self._in_flight += 1
        try:
            pool = await self._ready()
            if pool is None:
                return await self.local.run(attempt)
            async with per_loop(self._slots, self.threads):  # a free thread first, then the deadline
                call = functools.partial(pool.call, attempt)
                loop = asyncio.get_running_loop()
                return await asyncio.wait_for(loop.run_in_executor(self.local.pool(), call), attempt.timeout)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _pool(self) -> Workers:
        with self._lock:
            if self.workers is not None and self.workers.broken:
                stale, self.workers = self.workers, None
                self._broken_pools += 1
                threading.Thread(target=stale.close, daemon=True).start()
            if self.workers is None:
                self.workers = Workers(self.processes, providers.registered_prices())
            return self.workers

    async def _ready(self) -> Workers | None:
        """The worker processes for a hosted call, or None for the engine's threads."""
        if self.processes_from <= 1:
            pool = self._pool()
            await asyncio.get_running_loop().run_in_executor(None, pool.wait_ready)  # not the provider's time
            return pool
        if self.workers is None and (self._in_flight < self.processes_from or self._broken_pools >= 3):
            return None
        pool = self._pool()
        return pool if pool.is_ready else None

    def close(self) -> None:
        with self._lock:
            pool, self.workers = self.workers, None
        if pool is not None:
            pool.close()


class CallerProxy(BaseProxy):
    """The engine's side of a worker's `Caller` (one connection per engine thread)."""

    _exposed_ = ("run",)

    def run(self, attempt: Attempt) -> wire.Answer | Failed:
        return self._callmethod("run", (attempt,))


class _Client(BaseManager):
    pass


_Client.register("caller", proxytype=CallerProxy)


class Workers:
    """N worker processes; `call(attempt)` (blocking, from any thread) runs one attempt in
    the next one. They start in the background (`wait_ready`, `is_ready`)."""

    def __init__(self, processes: int, prices: dict[str, tuple[float, float]]) -> None:
        self.procs: list[subprocess.Popen] = []
        self._callers: list[CallerProxy | None] = [None] * processes
        self._next = itertools.cycle(range(processes))
        self._started = threading.Event()
        self.broken = False
        key = secrets.token_bytes(32)
        for _ in range(processes):
            self.procs.append(_spawn(key, prices))
        threading.Thread(target=self._connect, args=(key,), name="promptc-workers-start", daemon=True).start()

    @property
    def is_ready(self) -> bool:
        """Every worker has imported litellm and none has died."""
        return self._started.is_set() and not self.broken

    def wait_ready(self) -> None:
        if not self._started.wait(START_SECONDS) or self.broken:
            self.broken = True
            raise ConnectionError("promptc worker processes did not start")

    def call(self, attempt: Attempt) -> wire.Answer:
        """One attempt in a worker: its Answer, or RemoteError / ConnectionError."""
        if self.broken:
            raise ConnectionError("promptc worker process exited")
        caller = self._callers[next(self._next)]
        assert caller is not None, "call before wait_ready"
        try:
            out = caller.run(attempt)
        except (EOFError, OSError) as e:  # the worker is gone (killed, or closed under us)
            self.broken = True
            raise ConnectionError("promptc worker process exited") from e
        if isinstance(out, Failed):
            raise out.error()
        return out

    def close(self) -> None:
        self.broken = True
        for proc in self.procs:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # the worker exits when its stdin closes
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def _connect(self, key: bytes) -> None:
        """Read each worker's port (it prints it once litellm is imported) and connect."""
        try:
            for k, proc in enumerate(self.procs):
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.strip().isdigit():
                    raise ConnectionError(f"worker {k} did not start")
                client = _Client(address=("127.0.0.1", int(line)), authkey=key)
                client.connect()
                self._callers[k] = client.caller()
        except Exception as e:
            log.warning("promptc worker processes did not start: %s", e)
            self.broken = True
        self._started.set()


def _spawn(key: bytes, prices: dict[str, tuple[float, float]]) -> subprocess.Popen:
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # the folder promptc is imported from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptc.runtime.procpool"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(key.hex() + "\n" + json.dumps(prices) + "\n")
    proc.stdin.flush()
    return proc


# --- worker side ----------------------------------------------------------------------------


class Caller:
    """What a worker serves: one hosted attempt per `run`, on the manager's thread."""

    def __init__(self) -> None:
        self.litellm = providers.ensure_litellm()

    def run(self, attempt: Attempt) -> wire.Answer | Failed:
        remember_secrets(attempt.kwargs)  # so that this process's errors mask them too
        try:
            resp = hosted.complete(self.litellm, attempt.kwargs, Guard(attempt.timeout, attempt.max_bytes))
            return wire.answer_of(self.litellm, resp, attempt.model)
        except Exception as e:
            return Failed.of(e)


def serve() -> None:
    """A worker process: the authkey and prices on stdin, the port on stdout once ready;
    serves until its stdin closes."""
    key = bytes.fromhex(sys.stdin.readline().strip())
    for model, (inp, out) in json.loads(sys.stdin.readline()).items():
        providers.register_price(model, inp, out)
    caller = Caller()

    class Server(BaseManager):
        pass

    Server.register("caller", callable=lambda: caller, proxytype=CallerProxy)
    server = Server(address=("127.0.0.1", 0), authkey=key).get_server()

    def parent_gone() -> None:
        sys.stdin.read()  # returns at EOF: the engine closed, or its process is gone
        os._exit(0)

    threading.Thread(target=parent_gone, daemon=True).start()
    print(server.address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    serve()
