"""The scripted engine: deterministic answers computed from the prompt.

Model strings:
- "scripted/<name>": a Python callable registered with `register(name, fn)`;
  `fn(messages: list[dict]) -> str`, or `fn(messages, options)` to also see the
  request's decoding options (choices, response_format, temperature, max_tokens, seed). It may also return a dict
  {"text": ..., "prompt_tokens": ..., "completion_tokens": ...} (or a `CallResult`) to
  control the token counts, or raise — a litellm exception (RateLimitError, ...) is
  treated like the provider's, anything else is a non-retryable failure of the call.
  An `async def` fn is awaited (a test can make a call hang to exercise timeouts).
- "scripted/<path.json|.toml>": a rules file, read relative to the working directory:

      {"rules": [{"match": "capital of (\\\\w+)", "reply": "The capital of \\\\1."},
                 {"system": "JSON", "reply": "{\\"answer\\": \\"yes\\"}"},
                 {"any": "hello", "reply": "hi"}],
       "default": "I don't know."}

  Rules are tried in order. `match` is a regex searched in the last user message,
  `system` in the system message(s), `any` in all message contents joined by newlines
  (a rule may combine several: all must match). `reply` may use \\1 / \\g<name> groups
  of the last regex that matched. With no rule matching, `default` (or "") is the answer.
  TOML uses the same keys: `default = "..."` and `[[rules]]` tables.

Token counts are whitespace-word counts of the prompt and the answer: deterministic,
so the accounting in tests is exact.

`faulty(fn, rate, seed, kinds)` wraps a callable with deterministic fault injection
(429, 500, timeout, garbage) for tests and benchmarks of the engine's retry machinery.

Nothing here touches the network; litellm is imported only when an error must be raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import re
import threading
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

Messages = list[dict[str, Any]]
ScriptFn = Callable[[Messages], Any]

_REGISTRY: dict[str, tuple[ScriptFn, float, bool]] = {}
_RULES_CACHE: dict[tuple[str, float], RuleSet] = {}
_LOCK = threading.Lock()


def register(name: str, fn: ScriptFn, *, latency: float = 0.0) -> str:
    """Register `fn` as model "scripted/<name>"; returns that model string.

    latency: seconds every call sleeps before answering (asyncio.sleep, for benchmarks).
    Registering a name again replaces it.
    """
    if not name or name.startswith("/"):
        raise ValueError(f"bad scripted engine name {name!r}")
    with _LOCK:
        _REGISTRY[name] = (fn, float(latency), _wants_options(fn))
    return f"scripted/{name}"


def _wants_options(fn: ScriptFn) -> bool:
    """True if fn takes a second positional argument (the request options)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def unregister(name: str) -> None:
    with _LOCK:
        _REGISTRY.pop(name, None)


def registered(name: str) -> bool:
    return name in _REGISTRY


def entry(name: str) -> tuple[ScriptFn, float] | None:
    """The function and latency registered as "scripted/<name>" (None if none is): what
    an engine in another process registers to answer the same (ray_executor.py)."""
    with _LOCK:
        got = _REGISTRY.get(name)
    return None if got is None else (got[0], got[1])


@frozen
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int


class ScriptError(Exception):
    """A scripted model that cannot answer (unknown name, bad rules file, fn raised).

    The provider turns it into a non-retryable litellm.BadRequestError.
    """


def count_tokens(text: str) -> int:
    return len(text.split())


def _prompt_tokens(messages: Messages) -> int:
    return sum(count_tokens(str(m.get("content") or "")) for m in messages)


def last_user(messages: Messages) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def system_text(messages: Messages) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")


def all_text(messages: Messages) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


# --- rules files ------------------------------------------------------------------------

_FIELDS = {"match": last_user, "system": system_text, "any": all_text}


@frozen
class Rule:
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    reply: str

    def apply(self, messages: Messages) -> str | None:
        last = None
        for field, pattern in self.patterns:
            m = pattern.search(_FIELDS[field](messages))
            if m is None:
                return None
            last = m
        assert last is not None
        return last.expand(self.reply)


@frozen
class RuleSet:
    rules: tuple[Rule, ...]
    default: str = ""

    def answer(self, messages: Messages) -> str:
        for rule in self.rules:
            out = rule.apply(messages)
            if out is not None:
                return out
        return self.default


def parse_rules(data: dict[str, Any], where: str = "<rules>") -> RuleSet:
    """Build a RuleSet from the decoded JSON/TOML of a rules file."""
    if not isinstance(data, dict):
        raise ScriptError(f"{where}: a rules file is an object with 'rules' and 'default'")
    rules = []
    for i, raw in enumerate(data.get("rules", ())):
        if not isinstance(raw, dict) or "reply" not in raw:
            raise ScriptError(f"{where}: rule {i} needs a 'reply'")
        patterns = []
        for field in _FIELDS:
            if field in raw:
                try:
                    patterns.append((field, re.compile(str(raw[field]), re.IGNORECASE | re.DOTALL)))
                except re.error as e:
                    raise ScriptError(f"{where}: rule {i}: bad regex {raw[field]!r}: {e}") from e
        if not patterns:
            raise ScriptError(f"{where}: rule {i} needs one of 'match', 'system', 'any'")
        rules.append(Rule(tuple(patterns), str(raw["reply"])))
    return RuleSet(tuple(rules), str(data.get("default", "")))


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read a .json or .toml rules file (re-read when it changes on disk)."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError as e:
        raise ScriptError(f"scripted rules file not found: {p}") from e
    key = (str(p.resolve()), mtime)
    cached = _RULES_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ScriptError(f"{p}: cannot read rules file: {e}") from e
    rules = parse_rules(data, str(p))
    _RULES_CACHE[key] = rules
    return rules


# --- answering ----------------------------------------------------------------------------


def _normalize(out: Any, messages: Messages) -> Answer:
    if isinstance(out, Answer):
        return out
    if isinstance(out, str):
        return Answer(out, _prompt_tokens(messages), count_tokens(out))
    if isinstance(out, dict):
        if out.get("error"):
            raise ScriptError(str(out["error"]))
        text = str(out.get("text") or "")
        return Answer(
            text,
            int(out.get("prompt_tokens", _prompt_tokens(messages))),
            int(out.get("completion_tokens", count_tokens(text))),
        )
    text_attr = getattr(out, "text", None)  # a CallResult
    if text_attr is not None or getattr(out, "error", None):
        if getattr(out, "error", None):
            raise ScriptError(str(out.error))
        return Answer(
            str(text_attr),
            int(getattr(out, "prompt_tokens", 0)) or _prompt_tokens(messages),
            int(getattr(out, "completion_tokens", 0)) or count_tokens(str(text_attr)),
        )
    raise ScriptError(f"scripted function returned {type(out).__name__}, expected str or dict")


def _is_litellm_error(e: BaseException) -> bool:
    return type(e).__module__.startswith(("litellm", "openai", "httpx"))


async def answer(name: str, messages: Messages, options: dict[str, Any] | None = None) -> Answer:
    """Answer `messages` with scripted engine `name` (the part after "scripted/").

    options: the request's decoding options ({"choices", "response_format",
    "temperature", "max_tokens", "seed"}), given to fns that take a second argument.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        if name.endswith((".json", ".toml")):
            rules = load_rules(name)
            return _normalize(rules.answer(messages), messages)
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ScriptError(
            f"no scripted engine named {name!r} (registered: {known}); register one with "
            "promptc.runtime.scripted.register(name, fn) or give a .json/.toml rules file"
        )
    fn, latency, wants_options = entry
    if latency > 0:
        await asyncio.sleep(latency)
    try:
        out = fn(messages, dict(options or {})) if wants_options else fn(messages)
        if inspect.isawaitable(out):
            out = await out
    except ScriptError:
        raise
    except Exception as e:
        if _is_litellm_error(e):
            raise
        raise ScriptError(f"scripted engine {name!r} raised {type(e).__name__}: {e}") from e
    return _normalize(out, messages)


# --- fault injection ------------------------------------------------------------------------

FAULT_KINDS = ("429", "500", "timeout", "garbage")


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from its parts."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _prompt_id(messages: Messages) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)


def raise_fault(kind: str, model: str = "scripted/faulty", retry_after: float | None = None) -> None:
    """Raise the litellm exception a provider would raise for fault `kind`."""
    import httpx
    import litellm

    request = httpx.Request("POST", "http://scripted.invalid/v1/chat/completions")
    if kind == "429":
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        raise litellm.RateLimitError(
            "injected rate limit", llm_provider="scripted", model=model,
            response=httpx.Response(429, headers=headers, request=request),
        )
    if kind == "500":
        raise litellm.InternalServerError(
            "injected server error", llm_provider="scripted", model=model,
            response=httpx.Response(500, request=request),
        )
    if kind == "timeout":
        raise litellm.Timeout("injected timeout", model=model, llm_provider="scripted")
    raise ValueError(f"unknown fault kind {kind!r}")


class Faulty:
    """`fn` with deterministic faults; see `faulty`. Counts what it injected."""

    def __init__(
        self,
        fn: ScriptFn,
        rate: float = 0.3,
        seed: int = 0,
        kinds: Sequence[str] = FAULT_KINDS,
        retry_after: float | None = None,
    ) -> None:
        bad = [k for k in kinds if k not in FAULT_KINDS]
        if bad or not kinds:
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}, got {tuple(kinds)}")
        self.fn, self.rate, self.seed, self.kinds = fn, rate, seed, tuple(kinds)
        self.retry_after = retry_after
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {k: 0 for k in self.kinds}
        self.calls = 0

    def __call__(self, messages: Messages) -> Any:
        pid = _prompt_id(messages)
        with self._lock:
            attempt = self._attempts.get(pid, 0)
            self._attempts[pid] = attempt + 1
            self.calls += 1
        if _unit(self.seed, pid, attempt, "fault?") < self.rate:
            kind = self.kinds[int(_unit(self.seed, pid, attempt, "kind") * len(self.kinds))]
            with self._lock:
                self.injected[kind] += 1
            if kind == "garbage":
                return garbage(pid, attempt, self.seed)
            raise_fault(kind, retry_after=self.retry_after)
        return self.fn(messages)


def faulty(
    fn: ScriptFn,
    rate: float = 0.3,
    seed: int = 0,
    kinds: Sequence[str] = FAULT_KINDS,
    retry_after: float | None = None,
) -> Faulty:
    """Wrap `fn` so that a fraction `rate` of its calls fail.

    Deterministic: whether attempt k of a given prompt fails, and how, is a hash of
    (seed, prompt, k) — a retried prompt draws again, so retries can succeed, and the
    same test run always injects the same faults. Kinds: "429" (litellm.RateLimitError,
    with a Retry-After header when `retry_after` is set), "500"
    (litellm.InternalServerError), "timeout" (litellm.Timeout), "garbage" (an answer,
    but noise: the engine cannot tell, the parser downstream must).
    """
    return Faulty(fn, rate=rate, seed=seed, kinds=kinds, retry_after=retry_after)


def garbage(*parts: object) -> str:
    """Deterministic noise shaped like a broken model answer."""
    alphabet = "#@!%&*{}[]<>~^|\\/?;:\ufffdqzx0123456789 "
    n = 8 + int(_unit("len", *parts) * 24)
    return "".join(alphabet[int(_unit(i, *parts) * len(alphabet))] for i in range(n))
