"""Running promptc's coroutines from synchronous code: `run_sync(coro)`.

Every synchronous entry point (`promptc.optimize`, `promptc.evaluate`, `Trainer.fit`,
`run_forward`, the CLI, the providers' sync `completion`) runs its coroutine through
here. Outside an event loop the coroutine runs on a fresh one (`asyncio.run`); inside a
running loop (a notebook, an async app) it runs on a fresh loop in a worker thread, so
the caller's loop is never re-entered.

Before the fresh loop closes, what litellm's logging worker queued on it is let finish
(bounded by a few seconds): litellm keeps one logging worker for the process, and tasks
left on a closed loop would be carried to the next loop with a WARNING on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")
SETTLE_SECONDS = 5.0

log = logging.getLogger(__name__)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to the end from synchronous code, with or without a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_settled(coro))
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(_settled(coro))
        except BaseException as e:  # re-raised below on the caller's thread
            out["error"] = e

    thread = threading.Thread(target=target, name="promptc-run-sync")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


async def _settled(coro: Coroutine[Any, Any, T]) -> T:
    try:
        result = await coro
    except Exception:
        await settle_litellm()
        raise
    # (cancelled, e.g. by Ctrl-C: nothing is awaited on the way out)
    await settle_litellm()
    return result


async def settle_litellm() -> None:
    """Let litellm's logging worker finish the tasks queued on the running loop (if
    litellm is imported and its worker is bound to this loop; a worker serving another
    thread's loop is left alone)."""
    if "litellm" not in sys.modules:
        return
    worker_module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    worker = getattr(worker_module, "GLOBAL_LOGGING_WORKER", None)
    if worker is None or getattr(worker, "_bound_loop", None) is not asyncio.get_running_loop():
        return
    try:
        await asyncio.wait_for(worker.flush(), timeout=SETTLE_SECONDS)
    except Exception as e:  # a timeout or litellm's own failure: its bookkeeping, never the run's result
        log.debug("litellm's logging worker did not settle: %s", e)


__all__ = ["run_sync", "settle_litellm"]
