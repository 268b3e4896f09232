"""Limits on what one hosted call may read from the network: a deadline and a byte limit.

    guard = Guard(seconds=30, max_bytes=8 << 20)
    with guard.active():             # on the thread that makes the call
        litellm.completion(...)      # reads past the deadline or the limit raise
    guard.abort()                    # from any thread: the call's sockets are shut down

Why: the HTTP clients' own timeouts bound each read, not the whole response, so a server
that sends its headers and then one byte a second keeps a call's thread (and connection)
busy long after the engine gave up on it (`asyncio.wait_for` cannot stop a thread); and
nothing bounds a response's size, so a 50 MB body is read, parsed and cached whole.

How: litellm's hosted calls go through httpx (litellm's own handlers) or httpx2 (the
OpenAI SDK), whose synchronous connections read from `SyncStream.read` of httpcore /
httpcore2. `install()` wraps that one method in both (once per process). The wrapper does
nothing unless the calling thread runs inside `Guard.active()`; there, each read waits at
most until the guard's deadline (past it: the library's own `ReadTimeout`, so the
response is dropped and its connection closed, as for any timeout), counts the bytes
received (headers and body), and past `max_bytes` raises `ResponseTooLarge`: the body is
read no further and the connection is closed. Each socket read is remembered, so
`abort()` (the engine's close, or its deadline) shuts it down and a blocked read returns
at once. A library version without the method is logged and left alone (the calls then
have only the clients' per-read timeouts; tests/runtime/test_netguard.py notices).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
import threading
import time
from typing import Any, Iterator

from promptc.runtime.failures import ResponseTooLarge

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_BYTES_ENV = "PROMPTC_MAX_RESPONSE_BYTES"
_BACKENDS = ("httpcore._backends.sync", "httpcore2._backends.sync")

_current = threading.local()
_install_lock = threading.Lock()
_installed: list[str] = []


class Guard:
    """The limits of one call attempt (see the module doc). `seconds=None`: no deadline."""

    def __init__(self, seconds: float | None, max_bytes: int | None = DEFAULT_MAX_BYTES) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.max_bytes = max_bytes
        self.received = 0
        self.aborted = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def active(self) -> Iterator[Guard]:
        install()
        outer = getattr(_current, "guard", None)
        _current.guard = self
        try:
            yield self
        finally:
            _current.guard = outer
            with self._lock:  # done: its connections are the pool's again, not to be shut
                self._socks = []

    def abort(self) -> None:
        """Stop the call: shut down its sockets (a blocked read returns), fail later reads."""
        with self._lock:
            self.aborted = True
            socks, self._socks = self._socks, []
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _watch(self, sock: Any) -> None:
        if isinstance(sock, socket.socket):
            with self._lock:
                if sock not in self._socks:
                    self._socks.append(sock)
            if self.aborted:
                self.abort()


def max_bytes_from_env(environ: Any = None) -> int:
    """PROMPTC_MAX_RESPONSE_BYTES as a positive whole number, else DEFAULT_MAX_BYTES (a
    value that is not one is logged and ignored: a tuning knob must not stop a run)."""
    import os

    raw = (os.environ if environ is None else environ).get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        log.warning("%s=%r ignored: it must be a whole number of bytes above 0", MAX_BYTES_ENV, raw)
        return DEFAULT_MAX_BYTES
    return value


def install() -> list[str]:
    """Wrap `SyncStream.read` of httpcore and httpcore2 (once); the modules wrapped."""
    if len(_installed) == len(_BACKENDS):
        return _installed
    with _install_lock:
        for name in _BACKENDS:
            if name in _installed:
                continue
            try:
                module = importlib.import_module(name)
                stream = module.SyncStream
                original = stream.read
                timeout_error = importlib.import_module(name.split(".")[0]).ReadTimeout
            except (ImportError, AttributeError) as e:
                log.debug("network guard: %s not wrapped (%s)", name, e)
                _installed.append(name)  # not there: nothing to wrap, do not look again
                continue
            stream.read = _guarded(original, timeout_error)
            _installed.append(name)
    return _installed


def _guarded(original: Any, timeout_error: type[Exception]) -> Any:
    def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        guard: Guard | None = getattr(_current, "guard", None)
        if guard is None:
            return original(self, max_bytes, timeout)
        guard._watch(getattr(self, "_sock", None))
        if guard.aborted:
            raise timeout_error("the call was stopped")
        left = guard.remaining()
        if left is not None:
            if left <= 0:
                raise timeout_error("no complete answer within the call's deadline")
            timeout = left if timeout is None else min(timeout, left)
        data = original(self, max_bytes, timeout)
        guard.received += len(data)
        if guard.max_bytes is not None and guard.received > guard.max_bytes:
            raise ResponseTooLarge(f"a response over {_size(guard.max_bytes)} (the limit; {MAX_BYTES_ENV} sets it)")
        return data

    read.__wrapped__ = original  # type: ignore[attr-defined]
    return read


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KB"
    return f"{n:,} bytes"
