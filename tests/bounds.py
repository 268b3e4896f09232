"""`bounded(seconds, peak_bytes)`: a block must finish in time and within a memory budget.

For the fuzz tests: a watchdog (SIGALRM at twice `seconds`) turns a hang into a failure
instead of a stuck suite, and tracemalloc measures the peak of Python allocations in the
block. tracemalloc slows allocation-heavy code several times over (8x on the unroll pass),
so a block can be checked for time without it (`peak_bytes=None`) and for memory without
the time assertion (`timed=False`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import tracemalloc
from typing import Iterator


class Overrun(AssertionError):
    pass


@contextlib.contextmanager
def bounded(seconds: float, peak_bytes: int | None = None, *, timed: bool = True) -> Iterator[None]:
    def expire(signum, frame):
        raise Overrun(f"still running after {2 * seconds:.0f}s")

    watchdog = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if watchdog:
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, 2 * seconds)
    if peak_bytes is not None:
        tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] if peak_bytes is not None else 0
    finally:
        if peak_bytes is not None:
            tracemalloc.stop()
        if watchdog:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if timed:
        assert elapsed < seconds, f"{elapsed:.1f}s"
    if peak_bytes is not None:
        assert peak < peak_bytes, f"{peak / 1e6:.0f} MB"
