"""Fitting the optimizer's and the backward engine's prompts into the model's context.

A meta-prompt grows with the task: long inputs, many failing examples, loop steps, a long
memory. Sent whole it can exceed the model's context window, and the call fails
(`Requested tokens (2105) exceed context window of 2048` on the embedded model). Instead,
each prompt builder renders itself at a sequence of *levels*, each showing less than the
one before, least useful parts first, and the first level that fits the budget is sent:

    messages, level = first_fitting(render, LEVELS, budget(context_window(model), max_tokens))

The levels themselves belong to the builders (instruction.FIT_LEVELS,
backward.FIT_LEVELS), which say what they drop in which order. When even the smallest
level does not fit, it is sent anyway (logged): the call then fails as a recorded sample
error, never a crash.

The context window (`context_window`): "local/..." models report the n_ctx they are (or
will be) loaded with; "scripted/..." ones have none; any other model string is looked up
in litellm's bundled model table (`get_model_info(model)["max_input_tokens"]`, no network:
providers.py makes litellm use its local copy); unknown -> None, and nothing is fitted.

Tokens are estimated, not counted: UTF-8 bytes / 3 plus `MESSAGE_OVERHEAD` per message
(the chat template's role markers). English runs at about 4 characters a token on the
models we use, so the estimate errs on the safe side, also for non-Latin scripts (several
bytes a character); `MARGIN` tokens are kept free on top.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Sequence, TypeVar

log = logging.getLogger(__name__)

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 8  # tokens a chat template adds around each message
MARGIN = 64  # tokens kept free beyond the estimate and the reply
CUT = "…[cut]"  # marks where a shown text was shortened

L = TypeVar("L")
Messages = tuple[dict, ...]


def context_window(model: str) -> int | None:
    """The context window (tokens) of a model string, or None when it is not known."""
    provider, _, name = model.partition("/")
    if provider == "scripted":
        return None
    if provider == "local":
        from promptc.runtime import local

        return local.context_window(name)
    return _litellm_window(model)


@functools.lru_cache(maxsize=64)
def _litellm_window(model: str) -> int | None:
    try:
        from promptc.runtime.providers import ensure_litellm

        info = ensure_litellm().get_model_info(model)
    except Exception as e:  # litellm raises a bare Exception for a model it does not know
        log.debug("no context window known for %s: %s", model, e)
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


def estimate_tokens(text: str) -> int:
    """A conservative token count of `text` (UTF-8 bytes / 3, rounded up)."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def message_tokens(messages: Sequence[dict]) -> int:
    """The estimated prompt tokens of a chat request."""
    return sum(MESSAGE_OVERHEAD + estimate_tokens(str(m.get("content") or "")) for m in messages)


def budget(context: int | None, max_tokens: int, *, reserve: int = 0, margin: int = MARGIN) -> int | None:
    """The prompt tokens a request may use: the context less the reply, the margin and
    `reserve` (tokens to be added to the prompt later); None when the context is unknown."""
    if context is None:
        return None
    return max(0, context - max_tokens - margin - reserve)


def cut(text: str, limit: int) -> str:
    """`text` whole when it has at most `limit` characters, else its start and `CUT`."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT))].rstrip() + CUT


def cut_lines(text: str, limit: int) -> str:
    """`text` with each line cut to `limit` characters: a long input line is shortened and
    the short lines after it (a verdict's "Expected:" and "Got:") are kept."""
    return "\n".join(cut(line, limit) for line in text.split("\n"))


def share(texts: Sequence[str], total: int) -> list[str]:
    """Cut `texts` so that together they have about `total` characters, cutting the longest
    first: every text shorter than an equal share is kept whole and the others are cut to
    what is left, shared equally (water-filling). A short system prompt beside a long user
    input keeps its wording; the input is cut."""
    if sum(len(t) for t in texts) <= total:
        return list(texts)
    cap, rest, n = 0, total, len(texts)
    for length in sorted(len(t) for t in texts):
        fair = rest // n if n else 0
        if length > fair:
            cap = fair
            break
        rest -= length
        n -= 1
    return [cut(t, max(cap, len(CUT) + 20)) for t in texts]


def first_fitting(render: Callable[[L], Messages], levels: Sequence[L], limit: int | None) -> tuple[Messages, L]:
    """The messages of the first level whose estimate fits `limit` tokens (the last level
    when none does; the first when `limit` is None)."""
    messages = render(levels[0])
    if limit is None or message_tokens(messages) <= limit:
        return messages, levels[0]
    for level in levels[1:]:
        messages = render(level)
        if message_tokens(messages) <= limit:
            log.info("prompt fitted to %d tokens by showing less (%s)", limit, level)
            return messages, level
    log.warning(
        "prompt does not fit %d tokens even at its smallest (%d estimated); sending it anyway",
        limit, message_tokens(messages),
    )
    return messages, levels[-1]


def dedupe(texts: Sequence[str]) -> list[str]:
    """`texts` with repeats dropped (whitespace and case ignored); a repeated text gets
    "(×n)" so the count is not lost."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for t in texts:
        key = " ".join(t.split()).lower()
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, t)
    return [first[k] + (f" (×{n})" if n > 1 else "") for k, n in counts.items()]
