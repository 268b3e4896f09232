"""What the model calls cost: counts per (phase, model).

The engine adds to an `Accounting` after every request; the CLI prints its
`summary_line()`, the trainer stores `to_data()` in its checkpoints and enforces budgets
on `totals()`.

Definitions (one request = one `Engine.call`):
- calls: requests that went to a model (not answered from the cache), whether they
  succeeded or not. A re-run answered entirely from the cache has `calls == 0`.
- cache_hits: requests answered from the cache (they cost nothing and add no tokens).
- errors: requests that ended as an error after their retries (a subset of `calls`).
- retries: extra attempts beyond the first, over all requests.
- prompt_tokens / completion_tokens / cost: what the new calls used, as the provider
  reported it; cost is litellm's price when it knows the model, 0 otherwise.

So `calls + cache_hits` is the number of requests and `calls - errors + cache_hits` the
number answered.

The counters are guarded by a lock: safe from several threads and from many asyncio
tasks.

Provider numbers are checked before they are counted (`checked_usage`): a token count
that is missing, negative, not a whole number, or more than the request could have used
(its prompt is at most one token per byte of what was sent, plus the chat template's
few tokens per message; its completion at most `max_tokens`, or one token per byte of
the answer, whichever is more, with the same slack) is *unknown*: counted as 0 and noted
(`note_unknown_usage`), and `summary_line` ends with a warning. A cost that is not a
finite number >= 0, or the cost of a response whose tokens are unknown, is unknown too.
So no number a provider sends can grow a counter past what a checkpoint (msgpack: 64-bit
integers) or an artifact can store.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from attrs import fields, frozen

TOKEN_SLACK = 4096  # tokens a provider may add to a request (template, tools, schema)
PER_MESSAGE = 16  # chat-template tokens per message
MAX_COUNT = 2**53  # no count is believable beyond this (and msgpack's int64 holds it)


def reported_tokens(usage: Any) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) of a response's `usage`, each None unless a whole
    number in [0, MAX_COUNT]."""
    return _count(_get(usage, "prompt_tokens")), _count(_get(usage, "completion_tokens"))


def checked_usage(
    prompt: Any, completion: Any, cost: Any, messages: Any, max_tokens: Any, text: str | None,
    response_format: Any = None,
) -> tuple[int, int, float, bool]:
    """(prompt_tokens, completion_tokens, cost, believable) for one answered request (see
    the module doc); unknown numbers come back as 0 with believable False."""
    prompt, completion = _count(prompt), _count(completion)
    sent = _size(messages) + (_size(response_format) if response_format is not None else 0)
    n_messages = len(messages) if isinstance(messages, (list, tuple)) else 1
    prompt_limit = sent + PER_MESSAGE * n_messages + TOKEN_SLACK
    answer = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else 0
    completion_limit = max(_count(max_tokens) or 0, answer) + TOKEN_SLACK
    ok = prompt is not None and completion is not None and prompt <= prompt_limit and completion <= completion_limit
    if not ok:
        return 0, 0, 0.0, False
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
        return prompt, completion, 0.0, cost is None or cost == 0
    return prompt, completion, float(cost), True


def _get(usage: Any, name: str) -> Any:
    if isinstance(usage, dict):
        return usage.get(name)
    return getattr(usage, name, None)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > MAX_COUNT:
        return None
    return int(value)


def _size(value: Any) -> int:
    """The bytes of `value` as sent (JSON, UTF-8)."""
    try:
        return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError, RecursionError):
        return len(str(value))


@frozen
class Counts:
    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)})

    def __sub__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(Counts)})

    @property
    def requests(self) -> int:
        return self.calls + self.cache_hits

    @property
    def answered(self) -> int:
        return self.calls - self.errors + self.cache_hits

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Counts)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Counts:
        known = {f.name for f in fields(Counts)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Accounting:
    """Thread- and task-safe counters keyed by (phase, model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], Counts] = {}
        self.unknown_usage: dict[str, int] = {}  # model -> calls whose usage was not believable

    def note_unknown_usage(self, model: str) -> None:
        """A call of `model` whose provider reported usage that cannot be true (counted as 0)."""
        with self._lock:
            self.unknown_usage[model] = self.unknown_usage.get(model, 0) + 1

    def usage_warning(self) -> str:
        """"" or e.g. "usage unknown for 3 calls of openai/x (the provider's numbers cannot be true)"."""
        with self._lock:
            items = sorted(self.unknown_usage.items())
        if not items:
            return ""
        n = sum(k for _, k in items)
        models = ", ".join(m for m, _ in items)
        return f"usage unknown for {n:,} call{'s' if n != 1 else ''} of {models} (the provider's numbers cannot be true)"

    def add(self, phase: str, model: str, **amounts: Any) -> None:
        """Add `amounts` (any of the `Counts` fields) to the (phase, model) row."""
        delta = Counts(**amounts)
        key = (phase, model)
        with self._lock:
            self._rows[key] = self._rows.get(key, Counts()) + delta

    def rows(self) -> list[tuple[str, str, Counts]]:
        """(phase, model, counts) for every row, sorted."""
        with self._lock:
            items = sorted(self._rows.items())
        return [(phase, model, counts) for (phase, model), counts in items]

    def totals(self, phase: str | None = None, model: str | None = None) -> Counts:
        total = Counts()
        for p, m, counts in self.rows():
            if (phase is None or p == phase) and (model is None or m == model):
                total = total + counts
        return total

    def by_phase(self) -> dict[str, Counts]:
        out: dict[str, Counts] = {}
        for p, _m, counts in self.rows():
            out[p] = out.get(p, Counts()) + counts
        return out

    def by_model(self) -> dict[str, Counts]:
        out: dict[str, Counts] = {}
        for _p, m, counts in self.rows():
            out[m] = out.get(m, Counts()) + counts
        return out

    def snapshot(self) -> Accounting:
        """An independent copy (e.g. to report what one run added: `acc.since(snap)`)."""
        return Accounting.from_data(self.to_data())

    def since(self, earlier: Accounting) -> Accounting:
        """What was added after `earlier` (a snapshot of this accounting)."""
        before = {(p, m): c for p, m, c in earlier.rows()}
        out = Accounting()
        for p, m, counts in self.rows():
            diff = counts - before.get((p, m), Counts())
            if diff != Counts():
                out._rows[(p, m)] = diff
        return out

    def merge(self, other: Accounting) -> None:
        for p, m, counts in other.rows():
            self.add(p, m, **counts.to_data())

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def to_data(self) -> dict[str, Any]:
        """Plain data (msgpack/JSON-safe) for checkpoints."""
        return {"rows": [{"phase": p, "model": m, **c.to_data()} for p, m, c in self.rows()]}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Accounting:
        acc = cls()
        for row in data.get("rows", ()):
            row = dict(row)
            phase, model = row.pop("phase"), row.pop("model")
            acc._rows[(phase, model)] = Counts.from_data(row)
        return acc

    def summary_line(self, phase: str | None = None) -> str:
        """E.g. "calls 12 (cache hits 8) · tokens 3,456 in / 210 out · $0.0000"."""
        t = self.totals(phase)
        line = (
            f"calls {t.calls:,} (cache hits {t.cache_hits:,}) · "
            f"tokens {t.prompt_tokens:,} in / {t.completion_tokens:,} out · ${t.cost:.4f}"
        )
        extras = []
        if t.errors:
            extras.append(f"errors {t.errors:,}")
        if t.retries:
            extras.append(f"retries {t.retries:,}")
        if self.usage_warning():
            extras.append("warning: " + self.usage_warning())
        return line + (" · " + " · ".join(extras) if extras else "")

    def __repr__(self) -> str:
        return f"Accounting({self.summary_line()})"


__all__ = ["Accounting", "Counts"]
