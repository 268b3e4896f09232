"""`bounded(seconds, peak_bytes)`: a block must finish in time and within a memory budget.

For the fuzz tests: a watchdog (SIGALRM) turns a hang into a failure instead of a stuck
suite, and tracemalloc measures the peak of Python allocations in the block.
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
def bounded(seconds: float, peak_bytes: int) -> Iterator[None]:
    def expire(signum, frame):
        raise Overrun(f"still running after {2 * seconds:.0f}s")

    watchdog = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if watchdog:
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, 2 * seconds)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        if watchdog:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    assert elapsed < seconds, f"{elapsed:.1f}s"
    assert peak < peak_bytes, f"{peak / 1e6:.0f} MB"
