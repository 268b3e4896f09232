"""One hosted call through litellm, with litellm's per-call extras cut to what promptc uses.

    resp = hosted.complete(litellm, kwargs, guard)   # litellm.completion(**kwargs), on any thread
    hosted.cost(litellm, resp, model)                # its price in USD (0 when unknown)

`guard` (a netguard.Guard) bounds what the call may read: its deadline and byte limit
hold for the whole response, not per read, and `guard.abort()` stops it from another
thread (netguard.py says how).

Every executor (executor.py: the engine's threads; procpool.py's worker processes; a Ray
actor's engine) sends hosted calls through `complete`; every call still is
`litellm.completion`, so every provider litellm knows keeps working. Two things litellm
would otherwise do on every call are skipped when nothing needs them (litellm 1.110.2,
bench/throughput.py, 50 sequential calls profiled):

- Success logging. After each call litellm hands a success handler to its own logging
  thread, which builds a standard logging payload for the callbacks (~10 % of the
  process's CPU per call, competing for the GIL with the calls in flight). promptc keeps
  its own accounting and registers no litellm callback, so when none is registered
  (`litellm.callbacks`, `success_callback`, `_async_success_callback` all empty) the call
  runs in litellm's "internal sub-call" context, whose only effect on a synchronous
  `completion` is that no success handler is scheduled. A callback registered by the user
  (Langfuse, a custom logger, ...) turns this off: they get every call as before.
- The price search for a model litellm has no price for. litellm prices each response;
  for a model missing from its table (a self-hosted server's model name, say) it tries a
  list of fallbacks and gives up, ~1,450 Python calls (~15 %) per call. When the first
  response of a model comes back unpriced and litellm's table does not know the model
  (`get_model_info` fails), the model is registered as free (`providers.register_price`),
  so every later call finds its price at once. Models in litellm's table are never touched.

Why threads for hosted calls (bench/throughput.py, litellm 1.110.2, 2 cores):
`litellm.acompletion` runs its synchronous request setup on the event loop's default
executor, which has min(32, cores + 4) threads (6 here), and hands results back and
forth between the loop and those threads under the GIL: from 8 calls in flight on,
each call queues there, so per-call latency grows long before the CPU runs out
(measured interleaved on one server: wall / ideal 1.6-1.75 -> 1.24-1.40 at 8 in
flight, 4.4-4.7 -> 2.3-2.4 at 32, 9-11 -> 5-7 at 64). The synchronous path on a
pool sized to the calls in flight (DSPy's design) has no such queue. Its CPU per
call is litellm's (~5-7 ms here), ~10-20 % below DSPy's when DSPy goes through
litellm (above), about twice DSPy's own lm15 client (bench/throughput.py).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from promptc.runtime import providers
from promptc.runtime.netguard import Guard

log = logging.getLogger(__name__)


def complete(litellm: Any, kwargs: dict[str, Any], guard: Guard | None = None) -> Any:
    """`litellm.completion(**kwargs)`, without the per-call work nobody uses (module doc),
    within `guard`'s deadline and byte limit."""
    with guard.active() if guard is not None else contextlib.nullcontext():
        if _listeners(litellm):
            resp = litellm.completion(**kwargs)
        else:
            from litellm._internal_context import internal_sub_call

            with internal_sub_call():
                resp = litellm.completion(**kwargs)
    model = kwargs.get("model")
    if isinstance(model, str) and model not in _checked and _priced_as(resp) is None:
        _checked.add(model)
        if not providers.is_custom(model) and not _known(litellm, model):
            providers.register_price(model)  # free from now on: the next lookup is a dict hit
            log.debug("litellm has no price for %s: counted as free", model)
    return resp


def cost(litellm: Any, resp: Any, model: str) -> float:
    """The USD cost of `resp`: litellm's own price stamped on it, else computed; 0 if unknown."""
    value = _priced_as(resp)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(litellm.completion_cost(completion_response=resp, model=model) or 0.0)
    except Exception as e:  # unknown price: 0, never a failure
        log.debug("no price for %s (%s): counted as 0", model, e)
        return 0.0


_checked: set[str] = set()  # models whose first unpriced response was looked into


def _known(litellm: Any, model: str) -> bool:
    """Whether litellm's model table has `model` (then its price search is left alone)."""
    try:
        litellm.get_model_info(model=model)
    except Exception:
        return False
    return True


def _priced_as(resp: Any) -> Any:
    hidden = getattr(resp, "_hidden_params", None) or {}
    return hidden.get("response_cost") if isinstance(hidden, dict) else None


def _listeners(litellm: Any) -> bool:
    """Whether any litellm callback would see a successful call."""
    return any(getattr(litellm, name, None) for name in ("callbacks", "success_callback", "_async_success_callback"))
