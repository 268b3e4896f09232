"""The training budget: enforced per call, counted in one accounting."""

from __future__ import annotations

import asyncio

import pytest

from promptc.optim.budget import BudgetExhausted, Budgeted, Limits
from promptc.runtime.records import CallRequest
from tests.optim.helpers import Engine


def req(phase="forward"):
    return CallRequest(model="scripted/x", messages=({"role": "user", "content": "hi there"},), phase=phase)


def test_calls_past_the_limit_are_refused_even_when_concurrent():
    engine = Engine(lambda r: "ok")
    b = Budgeted(engine, Limits(calls=5))

    async def many():
        return await asyncio.gather(*(b.call(req()) for _ in range(12)))

    results = asyncio.run(many())
    assert sum(r.ok for r in results) == 5 and len(engine.requests) == 5
    assert all("max_calls=5" in r.error for r in results if not r.ok)
    with pytest.raises(BudgetExhausted):
        b.verify()


def test_tokens_and_cost_are_limits_too():
    engine = Engine(lambda r: "one two three")
    b = Budgeted(engine, Limits(tokens=5))
    asyncio.run(b.call(req()))
    assert b.exhausted() and "max_tokens=5" in b.exhausted()
    assert not asyncio.run(b.call(req())).ok and len(engine.requests) == 1


def test_accounting_by_phase():
    engine = Engine(lambda r: "x")
    b = Budgeted(engine, Limits())
    for phase in ("forward", "forward", "validate"):
        asyncio.run(b.call(req(phase)))
    by = b.accounting.by_phase()
    assert by["forward"].requests == 2 and by["validate"].requests == 1
    b.check()  # no limit: nothing raised


def test_spending_brackets_a_batch_of_calls():
    def batch(b: Budgeted, n: int):
        async def go():
            with b.spending():
                return await asyncio.gather(*(b.call(req()) for _ in range(n)))

        return asyncio.run(go())

    engine = Engine(lambda r: "ok")
    b = Budgeted(engine, Limits(calls=3))
    assert all(r.ok for r in batch(b, 3))  # a batch that reaches the limit exactly is complete
    with pytest.raises(BudgetExhausted, match="max_calls=3"):  # spent before the batch: no call made
        batch(b, 1)
    assert len(engine.requests) == 3
    with pytest.raises(BudgetExhausted, match="max_calls=2"):  # a call of the batch was refused: raised after it
        batch(Budgeted(Engine(lambda r: "ok"), Limits(calls=2)), 3)
    refused = Budgeted(Engine(lambda r: "ok"), Limits(calls=1))

    async def failing_batch():
        with refused.spending():
            await asyncio.gather(refused.call(req()), refused.call(req()))  # the second is refused
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):  # the batch's own error goes on, not the budget's
        asyncio.run(failing_batch())
    assert refused.refused
