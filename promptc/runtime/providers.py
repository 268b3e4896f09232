"""litellm glue: the `local` and `scripted` custom providers, and litellm's settings.

`ensure_litellm()` imports litellm once (with the bundled cost map: no network at
import), silences its stdout banners, and appends promptc's two handlers to
`litellm.custom_provider_map`, keeping entries other code registered. After that,
`litellm.acompletion(model="local/default", ...)` and `model="scripted/<name>"` reach
`LocalLLM` / `ScriptedLLM` below.

How request options reach a handler (litellm 1.110.2): temperature, max_tokens, seed and
response_format arrive in `optional_params`; promptc-specific options (the enum
`choices`) travel in `extra_body={"promptc": {...}}`, which litellm hands to custom
providers as `optional_params["extra_body"]`. The engine sends `extra_body` only to
these two providers: a hosted API would reject the unknown field.

Errors: a handler raises litellm's own exception types, which litellm passes through
unchanged; any other exception would be wrapped as a (retryable) APIConnectionError,
so setup problems (missing weights, unknown scripted engine, a context overflow) are
raised as BadRequestError — retrying them cannot help.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from promptc.runtime.sync import run_sync

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

log = logging.getLogger(__name__)

CUSTOM_PROVIDERS = ("local", "scripted")
_SETUP_LOCK = threading.Lock()
_litellm: Any = None


def ensure_litellm() -> Any:
    """Import and configure litellm once; register the custom providers. Returns the module."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _SETUP_LOCK:
        if _litellm is not None:
            return _litellm
        import warnings

        with warnings.catch_warnings():  # pydantic warns about litellm's TypedDicts at import
            warnings.simplefilter("ignore")
            import litellm
        # ... and again when litellm builds its response schemas on the first call
        warnings.filterwarnings("ignore", message=r".*ReadOnly. qualifier", category=UserWarning)

        litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on stdout
        litellm.telemetry = False
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            logging.getLogger(name).setLevel(logging.WARNING)
        _register(litellm)
        _litellm = litellm
        return litellm


def _register(litellm: Any) -> None:
    handlers = _handler_classes(litellm)
    current = [e for e in (litellm.custom_provider_map or []) if e.get("provider") not in CUSTOM_PROVIDERS]
    current += [{"provider": name, "custom_handler": handlers[name]()} for name in CUSTOM_PROVIDERS]
    litellm.custom_provider_map = current
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


def promptc_options(optional_params: dict | None) -> dict:
    """The promptc-specific options a handler received (see module doc)."""
    extra = (optional_params or {}).get("extra_body") or {}
    opts = extra.get("promptc") if isinstance(extra, dict) else None
    return opts if isinstance(opts, dict) else {}


def _fill(litellm: Any, model_response: Any, text: str, model: str, prompt_tokens: int, completion_tokens: int) -> Any:
    from litellm.types.utils import Usage

    model_response.choices[0].message.content = text
    model_response.choices[0].finish_reason = "stop"
    model_response.model = model
    model_response.usage = Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    # Free models: stamping the cost spares litellm its price lookup (~3 ms a call).
    hidden = getattr(model_response, "_hidden_params", None)
    if isinstance(hidden, dict):
        hidden["response_cost"] = 0.0
    else:
        model_response._hidden_params = {"response_cost": 0.0}
    return model_response


def _handler_classes(litellm: Any) -> dict[str, type]:
    from litellm import CustomLLM

    from promptc.runtime import local, scripted

    class ScriptedLLM(CustomLLM):
        """scripted/<name>: answers from promptc.runtime.scripted."""

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            model_response = kwargs["model_response"]
            params = kwargs.get("optional_params") or {}
            options = {
                "choices": list(promptc_options(params).get("choices") or ()),
                "response_format": params.get("response_format"),
                "temperature": params.get("temperature"),
                "max_tokens": params.get("max_tokens"),
                "seed": params.get("seed"),
            }
            try:
                ans = await scripted.answer(model, messages, options)
            except scripted.ScriptError as e:
                raise litellm.BadRequestError(str(e), model=f"scripted/{model}", llm_provider="scripted") from e
            return _fill(litellm, model_response, ans.text, f"scripted/{model}", ans.prompt_tokens, ans.completion_tokens)

        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            return run_sync(self.acompletion(model, messages, *args, **kwargs))

    class LocalLLM(CustomLLM):
        """local/<default|path.gguf>: the embedded llama-cpp model."""

        @staticmethod
        def _options(kwargs: dict) -> dict:
            params = kwargs.get("optional_params") or {}
            opts = promptc_options(params)
            return {
                "temperature": float(params.get("temperature") or 0.0),
                "max_tokens": int(params.get("max_tokens") or params.get("max_completion_tokens") or 256),
                "seed": int(params.get("seed") or 0),
                "response_format": params.get("response_format"),
                "choices": tuple(opts.get("choices") or ()),
            }

        @staticmethod
        def _bad(model: str, e: Exception) -> Exception:
            return litellm.BadRequestError(str(e), model=f"local/{model}", llm_provider="local")

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            try:
                ans = await local.acomplete(model, messages, **self._options(kwargs))
            except (local.LocalModelUnavailable, ValueError) as e:  # ValueError: prompt exceeds n_ctx
                raise self._bad(model, e) from e
            return _fill(litellm, kwargs["model_response"], ans.text, f"local/{model}", ans.prompt_tokens, ans.completion_tokens)

        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            try:
                ans = local.complete(model, messages, **self._options(kwargs))
            except (local.LocalModelUnavailable, ValueError) as e:
                raise self._bad(model, e) from e
            return _fill(litellm, kwargs["model_response"], ans.text, f"local/{model}", ans.prompt_tokens, ans.completion_tokens)

    return {"scripted": ScriptedLLM, "local": LocalLLM}


_PRICED: dict[str, tuple[float, float]] = {}  # model -> (input, output) cost per token


def register_price(model: str, input_cost_per_token: float = 0.0, output_cost_per_token: float = 0.0) -> None:
    """Tell litellm the price of `model` (once per model string and process).

    Custom providers are registered as free: with the model in litellm's cost map its
    per-call price lookup is a dict hit instead of a ~10 ms search through fallbacks.
    """
    if model in _PRICED:
        return
    litellm = ensure_litellm()
    provider = provider_of(model) or "openai"
    quiet = logging.getLogger("LiteLLM")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns that cache-token prices default to 0
    try:
        litellm.register_model({
            model: {
                "input_cost_per_token": float(input_cost_per_token),
                "output_cost_per_token": float(output_cost_per_token),
                "litellm_provider": provider,
                "mode": "chat",
            }
        })
    finally:
        quiet.setLevel(level)
    _PRICED[model] = (float(input_cost_per_token), float(output_cost_per_token))


def registered_prices() -> dict[str, tuple[float, float]]:
    """The prices given to `register_price` in this process (worker processes get them too)."""
    return dict(_PRICED)


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def is_custom(model: str) -> bool:
    return provider_of(model) in CUSTOM_PROVIDERS
