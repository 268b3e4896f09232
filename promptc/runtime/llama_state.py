"""Saved llama states, found by the longest token prefix they share with a prompt.

The embedded model's instances (promptc.runtime.local) share one `PrefixCache`: after a
completion, llama-cpp-python saves the instance's state (its KV cache) under the prompt
and answer tokens; before one, it loads the saved state sharing the longest prefix with
the prompt when that is longer than what the instance already holds, then evaluates only
the rest of the prompt. `prefix_llama_class()` is the `Llama` whose states are lean
enough for that to pay.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

MIN_NEW_TOKENS = 48  # a completion that evaluated fewer saves no state (prefix_llama_class)


class PrefixCache:
    """Saved llama states (the KV cache of a prompt and its answer), shared by every
    instance of one model, found by the longest common token prefix: llama-cpp-python's
    own `LlamaRAMCache` (least recently used dropped past `capacity_bytes`) behind a lock,
    since the pool's worker threads read and write it at once. `Llama` consults it before
    each completion (loading a state only when it shares more of the prompt than what the
    instance holds) and saves into it after each one (see `prefix_llama_class`)."""

    def __init__(self, capacity_bytes: int) -> None:
        from llama_cpp import LlamaRAMCache

        self.capacity_bytes = capacity_bytes
        self._ram = LlamaRAMCache(capacity_bytes=capacity_bytes)
        self._lock = threading.Lock()

    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            return self._ram[key]  # KeyError when no saved state shares a token

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._ram

    def __setitem__(self, key: Any, state: Any) -> None:
        if state is None:  # not worth keeping (PrefixLlama.save_state)
            return
        with self._lock:
            self._ram[key] = state

    def clear(self) -> None:
        with self._lock:
            self._ram.cache_state.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ram.cache_state)

    @property
    def cache_size(self) -> int:
        with self._lock:
            return self._ram.cache_size

    def __bool__(self) -> bool:  # `if self.cache:` in llama-cpp-python means "is set"
        return True


@functools.cache
def prefix_llama_class() -> type:
    """`llama_cpp.Llama` whose saved state is the llama context's data and the tokens
    only. llama-cpp-python 0.3.36's `save_state` also copies its logits buffer
    (n_batch x n_vocab floats: 59 MB for a 270-token prompt of SmolLM2) and `load_state`
    rewrites and scans all of it: 0.34 s and 0.69 s per call, measured; with
    `logits_all=False` (ours) that buffer is never filled nor read, so a state is the
    ~23 KB per token of KV cache alone and saves or loads in milliseconds.

    A completion that evaluated fewer than `MIN_NEW_TOKENS` tokens itself (it reused a
    prefix, then read a question and answered it) saves nothing: its state would only help
    a later prompt that shares more than that prefix, which the call cache already answers
    when it is the same prompt, while copying the state out costs more than those few
    tokens (~30 ms for a 270-token state against ~3 ms a token to evaluate, measured).
    Saving what a call computed at length (a new demo set, a long answer) is what lets
    the next prompt with that prefix skip it.

    It also counts what it evaluated: `tokens_evaluated` (prompt and answer tokens run
    through the model; a reused prefix is not) and `states_loaded`."""
    import ctypes

    import llama_cpp
    import numpy as np

    native = llama_cpp.llama_cpp

    class PrefixLlama(llama_cpp.Llama):
        tokens_evaluated = 0
        states_loaded = 0
        states_saved = 0
        _evaluated_before = 0  # tokens_evaluated when the current completion began

        def eval(self, tokens: Any) -> None:
            self.tokens_evaluated += len(tokens)
            super().eval(tokens)

        def create_completion(self, *args: Any, **kw: Any) -> Any:
            self._evaluated_before = self.tokens_evaluated
            return super().create_completion(*args, **kw)

        def save_state(self) -> Any:
            if self.tokens_evaluated - self._evaluated_before < MIN_NEW_TOKENS:
                return None  # PrefixCache keeps nothing for it
            self._evaluated_before = self.tokens_evaluated
            self.states_saved += 1
            ctx = self._ctx.ctx
            size = native.llama_state_get_size(ctx)
            buf = (ctypes.c_uint8 * size)()
            n = native.llama_state_get_data(ctx, buf, size)
            if n > size:
                raise RuntimeError("llama_state_get_data wrote past its buffer")
            return llama_cpp.LlamaState(
                input_ids=self.input_ids[: self.n_tokens].copy(), scores=np.empty((0, 0), dtype=np.single),
                n_tokens=self.n_tokens, llama_state=buf, llama_state_size=n, seed=self._seed,
            )

        def load_state(self, state: Any) -> None:
            if native.llama_state_set_data(self._ctx.ctx, state.llama_state, state.llama_state_size) != state.llama_state_size:
                log.warning("a saved prefix did not load; the prompt is evaluated in full")
                self.reset()
                self._ctx.kv_cache_seq_rm(-1, 0, -1)
                return
            self.input_ids[: state.n_tokens] = state.input_ids
            self.n_tokens = state.n_tokens
            self._requires_eval = True
            self._seed = state.seed
            self.states_loaded += 1

    return PrefixLlama


__all__ = ["MIN_NEW_TOKENS", "PrefixCache", "prefix_llama_class"]
