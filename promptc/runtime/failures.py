"""What a failed model call means: retry or not, how long to wait, how to report it.

    retryable, after = classify(exc)   # (retry?, Retry-After seconds or None)
    describe(exc)                      # one line for CallResult.error, keys scrubbed
    scrub(text)                        # anything that looks like an API key -> ***

Retried: rate limits (429) and the other RETRYABLE_STATUS codes, server errors (5xx),
timeouts, connection and transport errors; anything else (bad request, authentication,
unknown model) fails at once. A failure in a worker process (workers.RemoteError) was
classified and described in the worker already. Keys never reach an error message: the
values of *_KEY / *_TOKEN / *_SECRET variables and key-shaped strings are replaced.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import re
import time
from typing import Any

from promptc.runtime import workers

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def classify(e: BaseException) -> tuple[bool, float | None]:
    """(retryable?, Retry-After seconds or None) for an exception from a call."""
    if isinstance(e, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True, None
    if isinstance(e, workers.RemoteError):  # classified in the worker, where the exception was
        return e.retryable, e.retry_after
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
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = get("retry-after") or get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{0,8}key[-_][A-Za-z0-9_\-]{16,})")


def scrub(text: str) -> str:
    """Remove anything that looks like an API key (and the values of *_KEY, *_TOKEN and
    *_SECRET env vars, which covers the variables `key_env` declarations usually name)."""
    for name, value in os.environ.items():
        if value and len(value) >= 8 and name.endswith(("_KEY", "_TOKEN", "_SECRET")):
            text = text.replace(value, "***")
    return _SECRET.sub("***", text)


def describe(e: BaseException) -> str:
    """One line for a failed call's CallResult.error: type, message (500 chars at most), scrubbed."""
    if isinstance(e, workers.RemoteError):  # described in the worker already
        return scrub(str(e))
    msg = str(e).strip() or repr(e)
    msg = msg.split("\nTraceback", 1)[0]
    if len(msg) > 500:
        msg = msg[:500] + "…"
    name = type(e).__name__
    if not msg.startswith(("litellm.", name)):
        msg = f"{name}: {msg}"
    return scrub(msg)
