"""Records shared by the engines, the interpreter and the trainer.

A model call is a `CallRequest`; the engine answers every request with a `CallResult`,
never an exception: a call that failed after its retries is a result with `error` set.
Running a workflow on one sample gives a `Trace`: every node's `NodeRecord`, in the
order the nodes ran.
"""

from __future__ import annotations

import functools
from typing import Any

from attrs import frozen

PHASES = ("forward", "backward", "propose", "validate", "demos")


@frozen
class Endpoint:
    """Where a model is called and how it is reached (from its `model` declaration).

    base_url: the API base (litellm's `api_base`), or None for the provider's default.
    key_env: the NAME of the environment variable holding the API key; the engine reads
        it at call time, so the key is never part of a request, a cache key or a log.
    timeout: seconds per attempt (None: the engine's). response_schema: whether the
        endpoint takes a JSON schema in `response_format` (None: ask litellm).
    """

    base_url: str | None = None
    key_env: str | None = None
    timeout: float | None = None
    response_schema: bool | None = None


@frozen
class CallRequest:
    """One chat completion.

    model: a litellm model string ("local/default", "scripted/rules.json",
        "openai/gpt-4o-mini", ...), already resolved from the program's `model` decls.
    messages: ({"role": ..., "content": ...}, ...).
    response_format: a JSON schema (dict) the answer must follow, or None.
    choices: for enum outputs, the labels the answer must be one of (engines that can
        constrain decoding use it; others ignore it).
    phase: which accounting bucket pays for it (see PHASES).
    rollout: a cache-bypass salt: requests that differ only by rollout are cached apart.
    top_p: nucleus sampling (None: the provider's default).
    endpoint: where to send it (None: the provider's default endpoint, or the one the
        engine knows for this model string, see `Engine.use_models`).
    """

    model: str
    messages: tuple[dict, ...]
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int = 0
    response_format: dict | None = None
    choices: tuple[str, ...] = ()
    phase: str = "forward"
    rollout: str = ""
    top_p: float | None = None
    endpoint: Endpoint | None = None


@frozen
class CallResult:
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    attempts: int = 1
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@frozen
class NodeRecord:
    """What one node did in one sample.

    executed is False for a node whose guard was false (a loop step after a break).
    For an llm node, `messages` are the rendered messages and `raw` the model's text;
    `error` is set when the node failed (call error, unparsable answer, exception in a
    functional node) and then `value` is None.
    """

    name: str
    value: Any = None
    executed: bool = True
    error: str | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    messages: tuple[dict, ...] = ()
    raw: str | None = None


@frozen(slots=False)  # not slotted: the index by name is cached on the instance
class Trace:
    """One sample through the forward program. `error` is the first node error, if any.
    `record(name)` is a dict lookup (the index is built on first use)."""

    inputs: tuple[tuple[str, Any], ...]
    records: tuple[NodeRecord, ...]
    output: Any = None
    error: str | None = None

    def record(self, name: str) -> NodeRecord:
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, NodeRecord]:
        out: dict[str, NodeRecord] = {}
        for r in self.records:
            out.setdefault(r.name, r)  # the first record of a name, as a scan would find
        return out

    def value(self, name: str) -> Any:
        return self.record(name).value

    @property
    def ok(self) -> bool:
        return self.error is None
