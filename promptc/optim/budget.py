"""Training's accounting and its hard budget, in one engine wrapper.

    metered = Budgeted(engine, Limits(calls=300), Accounting())
    await metered.call(request)     # refused with a CallResult error once a limit is hit

Every request training makes goes through a `Budgeted` engine. Before the request it
checks the limits — calls (requests, cache hits included), prompt + completion tokens,
cost — and refuses it as a failed `CallResult` once any is reached; after it, it adds the
request to an `Accounting` (promptc.runtime.accounting: one set of counters for the
whole product, keyed by phase and model). The check is per call, so concurrent calls
cannot overshoot the call limit (a call is reserved before it is awaited); the token and
cost limits can be passed by the calls already in flight when the limit is reached, by
at most one batch.

Budgets count requests, not only the calls that reached a model: a resumed run (whose
earlier requests come from the cache) stops exactly where the uninterrupted run did.

A batch of calls (a forward pass, a backward pass, one proposal) is bracketed by
`spending()`: it raises `BudgetExhausted` before the batch if the budget is already spent,
and after it if any of its calls was refused, so the trainer abandons the round:

    with metered.spending():
        traces = await forward(program, rows, metered)

The test evaluation at the end of a run uses its own `Budgeted` with no limits and its
own accounting, so it is never refused by the training budget and is reported apart.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from attrs import frozen

from promptc.runtime.accounting import Accounting, Counts
from promptc.runtime.records import CallResult


class BudgetExhausted(Exception):
    """A limit was reached; the trainer abandons the step in progress and stops."""


@frozen
class Limits:
    calls: int | None = None
    tokens: int | None = None
    cost: float | None = None

    def reached(self, totals: Counts) -> str | None:
        """The reason the budget is spent, or None."""
        if self.calls is not None and totals.requests >= self.calls:
            return f"budget: max_calls={self.calls} reached"
        if self.tokens is not None and totals.tokens >= self.tokens:
            return f"budget: max_tokens={self.tokens} reached"
        if self.cost is not None and totals.cost >= self.cost:
            return f"budget: max_cost={self.cost} reached"
        return None


class Budgeted:
    """An engine that counts every request in `accounting` and refuses those past `limits`."""

    def __init__(self, engine, limits: Limits = Limits(), accounting: Accounting | None = None):
        self.engine = engine
        self.limits = limits
        self.accounting = accounting if accounting is not None else Accounting()
        self.refused: str | None = None  # the reason of the first refusal
        self._lock = threading.Lock()
        self._reserved = 0  # requests started and not yet counted

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def totals(self) -> Counts:
        return self.accounting.totals()

    def exhausted(self) -> str | None:
        """Why no further request may be made, or None."""
        return self.limits.reached(self.totals())

    async def call(self, req) -> CallResult:
        with self._lock:
            totals = self.totals()
            reason = self.limits.reached(totals + Counts(calls=self._reserved))
            if reason:
                self.refused = self.refused or reason
                return CallResult(text=None, error=reason)
            self._reserved += 1
        try:
            res = await self.engine.call(req)
        except BaseException:
            with self._lock:
                self._reserved -= 1
            raise
        with self._lock:  # counted and unreserved at once: no other call sees a gap
            self.accounting.add(
                req.phase, req.model,
                calls=0 if res.cached else 1, cache_hits=1 if res.cached else 0, errors=0 if res.ok else 1,
                retries=max(0, res.attempts - 1) if not res.cached else 0,
                prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens, cost=res.cost,
            )
            self._reserved -= 1
        return res

    @contextmanager
    def spending(self) -> Iterator[None]:
        """Around a batch of calls: `check()` before it, `verify()` after it (not when the
        batch raised: its own exception goes on)."""
        self.check()
        yield
        self.verify()

    def check(self) -> None:
        """Before a batch of calls: raise `BudgetExhausted` if a request was refused or a
        limit is reached."""
        reason = self.refused or self.exhausted()
        if reason:
            raise BudgetExhausted(reason)

    def verify(self) -> None:
        """After a batch of calls: raise `BudgetExhausted` if any of them was refused (a
        batch whose last call reached the limit exactly is complete)."""
        if self.refused:
            raise BudgetExhausted(self.refused)


__all__ = ["BudgetExhausted", "Budgeted", "Limits"]
