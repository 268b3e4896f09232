"""runtime/sync.run_sync: one way to run promptc's coroutines from synchronous code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from promptc.runtime import providers
from promptc.runtime.sync import run_sync


def test_runs_on_a_fresh_loop_outside_and_inside_a_running_loop():
    async def where() -> tuple[int, int]:
        return id(asyncio.get_running_loop()), threading.get_ident()

    _, outside_thread = run_sync(where())
    assert outside_thread == threading.get_ident()

    async def caller() -> tuple[int, int, int]:
        inner_loop, inner_thread = run_sync(where())  # from inside a running loop: no re-entry
        return id(asyncio.get_running_loop()), inner_loop, inner_thread

    outer_loop, inner_loop, inner_thread = asyncio.run(caller())
    assert inner_loop != outer_loop and inner_thread != threading.get_ident()


def test_errors_reach_the_caller():
    async def boom() -> None:
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="^bad row$"):
        run_sync(boom())


def test_litellm_logging_queued_on_the_loop_finishes_before_it_closes():
    # litellm keeps one logging worker per process; a task it queued on a loop that then
    # closed would be carried to the next loop with a WARNING on stderr.
    providers.ensure_litellm()
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    ran: list[str] = []

    async def log_task() -> None:
        await asyncio.sleep(0.05)
        ran.append("logged")

    async def call() -> str:
        GLOBAL_LOGGING_WORKER.ensure_initialized_and_enqueue(log_task())
        return "answer"

    assert run_sync(call()) == "answer"
    assert ran == ["logged"]
    assert GLOBAL_LOGGING_WORKER.pending_count == 0
