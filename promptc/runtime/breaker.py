"""When the engine stops asking: a retry budget per run and a circuit breaker per model.

    guard = Breaker(threshold=20, retry_budget=20, retry_refill=2.0)
    guard.may_retry()                  # spend one retry of the run's budget, if any is left
    guard.succeeded(model)             # a call answered: its model's failure run ends
    guard.failed(model, error, blame)  # a call failed; -> Tripped once the breaker opens
    guard.tripped                      # the first model the breaker stopped, or None

Retry budget (Finagle's and gRPC's idea): a provider that fails most calls should not
also be asked four more times for each. A run may make `retry_budget` retries before any
call has succeeded, and each answered call adds `retry_refill` more; a retry beyond that
is not made (the call fails with its last error). A healthy provider that needs a retry
now and then (rate limits) never runs out; a dead one costs `retry_budget` extra
requests in all, not four per call.

Circuit breaker: `threshold` calls of one model in a row that failed on every attempt,
for a reason that blames the provider (failures.blames_provider: timeouts, 5xx, 429,
connection errors, refused keys, unknown models, a hosted provider's empty or malformed
responses; not a bad request, which is one sample's problem, nor the embedded model's
empty answer to one prompt), open the breaker for that model: from then on its calls fail at
once, without a request, with `Tripped.message()`, and the listeners (the CLI, which ends
the run with that one line and exit 1) are told. Nothing of a failed call is cached.
`threshold=0` turns the breaker off. A process that goes on (a served `promptc.load`
workflow) is not cut off for good: `cooldown` seconds after the breaker opened, one call
is let through (half-open); its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, Callable, TypeVar

from attrs import frozen

DEFAULT_THRESHOLD = 20
DEFAULT_RETRY_BUDGET = 20
DEFAULT_RETRY_REFILL = 2.0
DEFAULT_COOLDOWN = 60.0


@frozen
class Tripped:
    """A model the breaker stopped asking: how many calls failed in a row, and the last error."""

    model: str
    failures: int
    last_error: str

    def message(self) -> str:
        return f"stopped calling {self.model} after {self.failures} failed calls in a row; last error: {self.last_error}"


class Breaker:
    """The retry budget and the per-model circuit breaker of one engine (module doc)."""

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        retry_refill: float = DEFAULT_RETRY_REFILL,
        cooldown: float = DEFAULT_COOLDOWN,
    ) -> None:
        self.threshold = max(0, int(threshold))
        self.cooldown = float(cooldown)
        self._opened: dict[str, float] = {}  # model -> when it opened, or when its probe left
        self.retry_refill = float(retry_refill)
        self._tokens = float(retry_budget)
        self._cap = float(retry_budget)  # grows with every answered call
        self._runs: dict[str, int] = {}
        self._open: dict[str, Tripped] = {}
        self._first: Tripped | None = None
        self._listeners: list[Callable[[Tripped], None]] = []
        self._lock = threading.Lock()

    @property
    def tripped(self) -> Tripped | None:
        """The first model whose breaker opened, or None."""
        return self._first

    def is_open(self, model: str) -> Tripped | None:
        """The model's `Tripped` while its calls are refused; None lets the call go (the
        breaker is closed, or this call is the half-open probe)."""
        trip = self._open.get(model)
        if trip is None:
            return None
        with self._lock:
            if time.monotonic() - self._opened.get(model, 0.0) < self.cooldown:
                return trip
            self._opened[model] = time.monotonic()  # this call is the probe; the others wait
            return None

    def listen(self, callback: Callable[[Tripped], None]) -> Callable[[], None]:
        """Call `callback(tripped)` when a breaker opens (at once if one is open); returns
        a function that stops listening."""
        with self._lock:
            self._listeners.append(callback)
            first = self._first
        if first is not None:
            callback(first)

        def stop() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return stop

    def may_retry(self) -> bool:
        """Whether the run's budget allows one more retry (and spend it)."""
        with self._lock:
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def succeeded(self, model: str) -> None:
        with self._lock:
            self._runs[model] = 0
            self._tokens += self.retry_refill
            if self._open.pop(model, None) is not None:
                self._opened.pop(model, None)

    def failed(self, model: str, error: str, blames_provider: bool) -> Tripped | None:
        """Count a failed call; the `Tripped` record when this failure opens the breaker."""
        if not blames_provider or self.threshold == 0:
            return None
        with self._lock:
            if model in self._open:  # the probe failed: closed to calls for another cooldown
                self._opened[model] = time.monotonic()
                return None
            run = self._runs.get(model, 0) + 1
            self._runs[model] = run
            if run < self.threshold:
                return None
            trip = self._open[model] = Tripped(model, run, error)
            self._opened[model] = time.monotonic()
            if self._first is None:
                self._first = trip
            listeners = list(self._listeners)
        for callback in listeners:
            callback(trip)
        return trip


T = TypeVar("T")


class ModelStopped(RuntimeError):
    """A run ended early because the breaker stopped asking a model (`tripped`)."""

    def __init__(self, tripped: Tripped) -> None:
        super().__init__(tripped.message())
        self.tripped = tripped


async def stop_when_tripped(engine: Any, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it as soon as `engine`'s breaker stops asking a model;
    then raise `ModelStopped`. An engine without a breaker (a test double) just awaits."""
    task = asyncio.ensure_future(work)
    listen = getattr(engine, "when_tripped", None)
    if listen is None:
        return await task
    loop = asyncio.get_running_loop()
    stop = listen(lambda _trip: loop.call_soon_threadsafe(task.cancel))
    try:
        return await task
    except asyncio.CancelledError:
        tripped = engine.tripped
        if tripped is None or not task.cancelled():
            raise
        raise ModelStopped(tripped) from None
    finally:
        stop()


__all__ = ["Breaker", "ModelStopped", "Tripped", "stop_when_tripped"]
