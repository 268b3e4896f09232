"""The server's side of the compile workers (`promptc.lsp.worker`): at most `size` compiles
at once, each in its own worker process, off the request loop.

- `compile(uri, source, file)` returns the worker's answer, or None when a newer
  version of the same document superseded it (the next edit): a superseded compile that
  is still running is stopped by killing its worker, one still waiting never starts.
- A compile that runs longer than `timeout` seconds is stopped the same way and answered
  with a warning; a worker that dies (the memory cap, a crash) is answered with an error.
  Either way the server goes on, with a fresh worker.
- A spare worker is kept started, so a compile rarely waits for Python to start. A
  trusted worker is used once (a user module it imported would be stale after an edit);
  an untrusted one is reused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

_LINE_LIMIT = 1 << 30  # an answer is one JSON line; this bounds it, it does not allocate it


class WorkerGone(Exception):
    """The worker stopped before answering (killed, crashed, out of memory)."""


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.next_id = 0
        self.killed = False

    @property
    def alive(self) -> bool:
        return not self.killed and self.proc.returncode is None

    async def ask(self, source: str, file: str) -> dict[str, Any]:
        self.next_id += 1
        line = json.dumps({"id": self.next_id, "source": source, "file": file})  # ASCII, surrogates escaped
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(line.encode("ascii") + b"\n")
            await self.proc.stdin.drain()
            answer = await self.proc.stdout.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
            self.kill()
            raise WorkerGone(str(e)) from None
        if not answer:
            self.killed = True
            code = await self.proc.wait()
            raise WorkerGone(f"exit code {code}")
        data = json.loads(answer)
        if data.get("id") != self.next_id:  # never expected: a worker is killed when a compile is abandoned
            self.kill()
            raise WorkerGone(f"answer {data.get('id')} to request {self.next_id}")
        return data

    def kill(self) -> None:
        self.killed = True
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class CompilePool:
    def __init__(self, *, trust: bool = False, size: int = 2, timeout: float = 30.0, command: list[str] | None = None):
        self.trust = trust
        self.command = command or [sys.executable, "-m", "promptc.lsp.worker", *(["--trust"] if trust else [])]
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._version: dict[str, int] = {}
        self._running: dict[str, _Worker] = {}
        self._spare: list[_Worker] = []
        self._starting: asyncio.Task | None = None
        self._booting: _Worker | None = None
        self._closed = False

    def start(self) -> None:
        """Start the spare worker now (the first compile then does not wait for it)."""
        self._refill()

    async def compile(self, uri: str, source: str, file: str, *, delay: float = 0.0) -> dict[str, Any] | None:
        """`delay`: wait that long first, so a burst of edits compiles once, after the last."""
        version = self._version[uri] = self._version.get(uri, 0) + 1
        self.cancel(uri, bump=False)
        if delay > 0:
            await asyncio.sleep(delay)
        async with self._slots:
            if self._version.get(uri) != version or self._closed:
                return None
            try:
                worker = await self._take()
            except WorkerGone as e:
                return _stopped("error", f"the compiler cannot start ({e})")
            if self._version.get(uri) != version or self._closed:
                self._release(worker)
                return None
            self._running[uri] = worker
            answered = False
            try:
                answer = await asyncio.wait_for(worker.ask(source, file), self.timeout)
                answered = True
            except asyncio.TimeoutError:
                return _stopped("warning", f"compiling stopped after {self.timeout:g} s (the document is too slow to check)")
            except WorkerGone as e:
                if self._version.get(uri) != version or self._closed:
                    return None  # killed for a newer version
                log.error("the compile worker stopped while compiling %s: %s", file, e)
                return _stopped("error", f"the compiler stopped while checking this document ({e})")
            finally:
                if self._running.get(uri) is worker:
                    del self._running[uri]
                if not answered:  # timed out, died, or this task was cancelled mid-compile
                    worker.kill()
                self._release(worker)
        return answer if self._version.get(uri) == version else None

    def cancel(self, uri: str, *, bump: bool = True) -> None:
        """Stop the compile of `uri` (a closed document); `bump`: its waiting ones too."""
        if bump:
            self._version[uri] = self._version.get(uri, 0) + 1
        worker = self._running.pop(uri, None)
        if worker is not None:
            log.info("stopping the compile of %s (superseded)", uri)
            worker.kill()

    async def close(self) -> None:
        self._closed = True
        workers = [*self._running.values(), *self._spare, *([self._booting] if self._booting else [])]
        for w in workers:
            w.kill()
        for w in workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 5)
            except asyncio.TimeoutError:
                pass
        self._running.clear()
        self._spare.clear()

    # -- workers ------------------------------------------------------------------------------

    async def _take(self, attempts: int = 3) -> _Worker:
        """A started worker: a spare, else the one starting; `WorkerGone` when `attempts`
        workers in a row fail to start."""
        for _ in range(attempts):
            while self._spare:
                w = self._spare.pop()
                if w.alive:
                    self._refill()
                    return w
            if self._starting is None or self._starting.done():
                self._refill()
            if self._starting is None:  # closed
                break
            try:
                await asyncio.shield(self._starting)
            except OSError as e:
                log.error("cannot start a compile worker: %s", e)
        raise WorkerGone(f"no compile worker started after {attempts} attempts")

    def _release(self, worker: _Worker) -> None:
        if worker.alive and not self.trust and not self._closed:
            self._spare.append(worker)
        else:
            worker.kill()
        self._refill()

    def _refill(self) -> None:
        if self._closed or any(w.alive for w in self._spare):
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._spawn())

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_LINE_LIMIT
        )
        w = self._booting = _Worker(proc)
        assert proc.stdout is not None
        try:
            ready = await proc.stdout.readline()  # the worker has imported the compiler
        finally:
            self._booting = None
        if self._closed or not ready:
            w.kill()
            if not ready and not self._closed:
                log.error("a compile worker did not start (exit code %s)", await proc.wait())
            return
        self._spare.append(w)


def _stopped(severity: str, message: str) -> dict[str, Any]:
    return {"diagnostics": [[severity, message, None]], "index": None}
