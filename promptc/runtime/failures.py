"""What a failed model call means: retry or not, how long to wait, how to report it.

    retryable, after = classify(exc)   # (retry?, Retry-After seconds or None)
    describe(exc)                      # one line for CallResult.error, keys masked
    remember_secret(key)               # a key promptc sends: masked everywhere from now on
    scrub(text)                        # every known key (and key-shaped string) -> ***
    scrub_answer(text)                 # the keys promptc sent -> *** (for model answers)

Retried: rate limits (429) and the other RETRYABLE_STATUS codes, server errors (5xx),
timeouts, connection and transport errors; anything else (bad request, authentication,
unknown model) fails at once. A failure in another process (a worker process, a Ray
actor: procpool.py, ray_executor.py) arrives as a `RemoteError`, classified and described
there already (executor.Failed carries the verdicts across).

Keys never reach an error message, an answer, a log or a file. `scrub` masks:
- every key the engine sends, whatever its name or shape: the engine gives each call's
  `api_key` (from a model's `key_env`, or an `api_key` argument), any other secret
  argument (`*key*`, `*token*`, `*secret*`, `*password*`, `*credential*`) and, for a
  call without `api_key`, the provider's own key variables (`OPENAI_...`, `AWS_...`)
  to `remember_secrets` before the call leaves (`scrub_answer` masks these in answers);
- the values of the variables providers read their keys from when none is passed:
  names ending in `_KEY`, `_TOKEN`, `_SECRET`, `_PASSWORD` (OPENAI_API_KEY, HF_TOKEN,
  AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ...);
- anything shaped like a key (`sk-...`, `...key-<16+ characters>`).
A value shorter than MIN_SECRET characters is not masked: masking "none" (the placeholder
sent to servers without authentication) or a 4-letter word would garble answers, and
such a string protects nothing. A key is also masked in its JSON-escaped spelling.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
import threading
import time
from typing import Any

from promptc.secrets import SECRET_ENV_SUFFIXES

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
AUTH_STATUS = frozenset({401, 403})  # the provider refuses the key: every call will fail alike
MIN_SECRET = 8
SECRET_ARG_WORDS = ("key", "token", "secret", "password", "credential")
MASK = "***"


class RemoteError(Exception):
    """A call failed in another process (a worker, a Ray actor); `retryable` /
    `retry_after` are its `classify` verdict there, the message its `describe`."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None, blames: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.blames = blames  # the worker's `blames_provider`


class ResponseTooLarge(Exception):
    """A provider's response went past the byte limit; it was read no further."""


def classify(e: BaseException) -> tuple[bool, float | None]:
    """(retryable?, Retry-After seconds or None) for an exception from a call."""
    if isinstance(e, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True, None
    if isinstance(e, RemoteError):  # classified in the worker, where the exception was
        return e.retryable, e.retry_after
    if cause(e, ResponseTooLarge) is not None:  # a failed attempt: another may be smaller
        return True, None
    try:
        import openai
    except ImportError:  # pragma: no cover - litellm depends on openai
        openai = None  # type: ignore[assignment]
    if openai is not None:
        if isinstance(e, (openai.APITimeoutError, openai.APIConnectionError)):
            return True, retry_after(e)
        if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError, openai.BadRequestError,
                          openai.NotFoundError, openai.UnprocessableEntityError)):
            return False, None
    try:
        import httpx

        if isinstance(e, httpx.TransportError):
            return True, None
    except ImportError:  # pragma: no cover
        pass
    status = getattr(e, "status_code", None)
    if isinstance(status, int):
        if status in RETRYABLE_STATUS or status >= 500:
            return True, retry_after(e)
        return False, None
    return False, None


def is_timeout(e: BaseException) -> bool:
    """Whether `e` says an attempt ran out of time (asyncio's, the HTTP client's, litellm's)."""
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return True
    return any(k.__name__ in ("Timeout", "APITimeoutError", "TimeoutException") for k in type(e).__mro__)


def blames_provider(e: BaseException) -> bool:
    """Whether a failure says the provider (not this request) is at fault: anything
    retryable, a refused key (401/403) or an unknown model (404). A bad request (400,
    422: a prompt too long, a schema refused) is the sample's own problem."""
    if classify(e)[0]:
        return True
    if isinstance(e, RemoteError):
        return e.blames
    status = getattr(e, "status_code", None)
    return isinstance(status, int) and (status in AUTH_STATUS or status == 404)


def cause(e: BaseException | None, kind: type) -> BaseException | None:
    """The first exception of `kind` in `e`'s chain (`__cause__` / `__context__`), if any."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def retry_after(e: BaseException) -> float | None:
    """Seconds from a Retry-After / retry-after-ms header on the error, if any."""
    headers: Any = None
    response = getattr(e, "response", None)
    if response is not None:
        headers = getattr(response, "headers", None)
    for extra in (getattr(e, "headers", None), getattr(e, "litellm_response_headers", None)):
        if not headers and extra:
            headers = extra
    if not headers:
        return None
    try:
        get = headers.get
    except AttributeError:
        return None
    ms = get("retry-after-ms") or get("Retry-After-Ms")
    if ms:
        seconds = _seconds(ms, 1000.0)
        if seconds is not None:
            return seconds
    value = get("retry-after") or get("Retry-After")
    if not value:
        return None
    seconds = _seconds(value, 1.0)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    try:
        return max(0.0, when.timestamp() - time.time())
    except (OverflowError, OSError, ValueError):
        return None


def _seconds(text: Any, per_second: float) -> float | None:
    try:
        value = float(text) / per_second
    except (TypeError, ValueError):
        return None
    return value if value == value and value >= 0 else None  # NaN and negative: no header


# --- keys ------------------------------------------------------------------------------------

_SHAPED = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{0,8}key[-_][A-Za-z0-9_\-]{16,})")
# where a provider reads its key when none is passed, beyond <PROVIDER>_...
PROVIDER_VARIABLES = {
    "bedrock": ("AWS_",), "sagemaker": ("AWS_",), "vertex_ai": ("VERTEX", "GOOGLE_"), "gemini": ("GEMINI_", "GOOGLE_"),
    "huggingface": ("HF_", "HUGGINGFACE_"), "azure": ("AZURE_",), "azure_ai": ("AZURE_",), "together_ai": ("TOGETHER",),
}
_sent: set[str] = set()
_lock = threading.Lock()
_compiled: dict[bool, tuple[frozenset[str], re.Pattern[str] | None]] = {}


def remember_secret(value: Any) -> None:
    """Mask `value` (a key promptc is about to send) in everything `scrub` sees from now on."""
    if isinstance(value, str) and len(value) >= MIN_SECRET and value not in _sent:
        with _lock:
            _sent.add(value)


def remember_secrets(kwargs: dict[str, Any]) -> None:
    """Remember every key a provider call sends: its secret-looking arguments (`api_key`,
    tokens, ...), and without an `api_key`, the variables the provider reads one from."""
    for name, value in kwargs.items():
        if isinstance(value, str) and secret_name(name):
            remember_secret(value)
    model = kwargs.get("model")
    if "api_key" not in kwargs and isinstance(model, str) and "/" in model:
        provider = model.split("/", 1)[0].lower()
        prefixes = (provider.upper() + "_", *PROVIDER_VARIABLES.get(provider, ()))
        for name, value in list(os.environ.items()):
            if name.upper().startswith(prefixes) and secret_name(name):
                remember_secret(value)


def secret_name(name: str) -> bool:
    """Whether a variable or argument named `name` may hold a key: named like one
    (`*_KEY`, `*_TOKEN`, ...) or with a key word anywhere in it (`API_KEY_2`, `*TOKEN*`)."""
    upper = name.upper()
    return upper.endswith(SECRET_ENV_SUFFIXES) or any(w.upper() in upper for w in SECRET_ARG_WORDS)


def secrets(sent_only: bool = False) -> frozenset[str]:
    """The values `scrub` masks by value: the keys sent, and (unless `sent_only`) the
    values of every key-named variable."""
    with _lock:
        values = set(_sent)
    if not sent_only:
        values.update(v for k, v in list(os.environ.items()) if k.upper().endswith(SECRET_ENV_SUFFIXES))
    return frozenset(v for v in values if len(v) >= MIN_SECRET)


def _pattern(sent_only: bool) -> re.Pattern[str] | None:
    values = secrets(sent_only)
    known, pattern = _compiled.get(sent_only, (frozenset(), None))
    if values == known:
        return pattern
    spellings = set(values)
    for v in values:
        spellings.add(json.dumps(v)[1:-1])  # as it reads inside a JSON string
        spellings.add(json.dumps(v, ensure_ascii=False)[1:-1])
    # longest first, so that a key containing another is masked whole
    alternatives = sorted((s for s in spellings if s), key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(s) for s in alternatives)) if alternatives else None
    _compiled[sent_only] = (values, pattern)
    return pattern


def scrub(text: str) -> str:
    """`text` (an error, a log line) with every key promptc knows of masked: the keys it
    sent, the key-named variables' values, anything shaped like a key."""
    if not isinstance(text, str) or not text:
        return text
    pattern = _pattern(False)
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _SHAPED.sub(MASK, text)


def scrub_answer(text: str) -> str:
    """A model's answer with every key promptc sent masked (a proxy may echo its request's
    headers). Only those: an answer may well say "turkey-sandwich-with-extra-cheese", or a
    word that happens to be the value of some unrelated *_KEY variable."""
    if not isinstance(text, str) or not text:
        return text
    pattern = _pattern(True)
    return pattern.sub(MASK, text) if pattern is not None else text


_TRACEBACK = re.compile(r"\s*Traceback \(most recent call last\)")


def describe(e: BaseException) -> str:
    """One line for a failed call's CallResult.error: type, message (500 chars at most), keys
    masked; a Python traceback inside the message (litellm puts some there) is cut off."""
    if isinstance(e, RemoteError):  # described in the worker already
        return scrub(one_line(str(e)))
    big = cause(e, ResponseTooLarge)
    if big is not None:
        return scrub(one_line(str(big)))
    msg = one_line(str(e)) or repr(e)
    name = type(e).__name__
    if not msg.startswith(("litellm.", name)):
        msg = f"{name}: {msg}"
    return scrub(msg)


def one_line(text: str, limit: int = 500) -> str:
    """`text` up to any traceback, on one line, at most `limit` characters."""
    text = _TRACEBACK.split(text, 1)[0]
    text = " ".join(text.split())
    return text[:limit] + "…" if len(text) > limit else text
