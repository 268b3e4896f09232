"""Where and how a model is called: a `model` declaration + the environment -> settings.

    model srv = env("PROMPTC_SRV_MODEL", "openai/smollm") {
      base_url "http://127.0.0.1:8080/v1"    # litellm's api_base
      key_env  "SRV_API_KEY"                 # the NAME of the variable holding the key
      timeout  30                            # seconds per attempt
      temperature 0; max_tokens 64           # decoding defaults of this model's llm calls
    }

Every option (see `promptc.ir.MODEL_OPTIONS`) can be overridden from the environment by
`PROMPTC_<NAME>_<OPTION>`, NAME being the declaration's name in upper case:
`PROMPTC_SRV_BASE_URL=http://gpu:8000/v1`, `PROMPTC_SRV_TIMEOUT=120`,
`PROMPTC_SRV_RESPONSE_SCHEMA=false`. The model string itself keeps its own rule
(`env("VAR", default)`). An override that does not parse, or is not a valid value, is a
`ValueError` naming the variable.

Keys: a declaration names the variable (`key_env`), never the key. The engine reads the
variable when it sends a call (`litellm_params`), so the key is in no `CallRequest`, cache
key, artifact or log. Without `key_env`, litellm's own variables apply (`OPENAI_API_KEY`
for `openai/...`, ...); with `base_url`, no `key_env` and no `<PROVIDER>_API_KEY` set, the
placeholder "none" is sent, which local OpenAI-compatible servers accept.

Decoding defaults (temperature, top_p, max_tokens, seed) apply to the calls of the `llm`s
that run `via` the model; the backward engine and the optimizer choose their own.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from attrs import frozen

from promptc.ir import MODEL_OPTIONS, Model, check_model_option
from promptc.runtime.records import Endpoint
from promptc.secrets import refuse_secret_model

DECODING = ("temperature", "top_p", "max_tokens", "seed")
ENDPOINT = ("base_url", "key_env", "timeout", "response_schema")
NO_KEY = "none"  # what OpenAI-compatible servers without authentication are sent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@frozen
class ModelSettings:
    """A declaration resolved against the environment: the litellm model string, its
    endpoint (None when nothing about it was declared) and its decoding defaults."""

    model: str
    endpoint: Endpoint | None = None
    decoding: tuple[tuple[str, Any], ...] = ()


def override_var(model_name: str, option: str) -> str:
    """The environment variable that overrides `option` of model `model_name`."""
    return f"PROMPTC_{model_name.upper()}_{option.upper()}"


def options(model: Model, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The model's options with the environment's overrides applied."""
    environ = os.environ if environ is None else environ
    out = dict(model.options)
    for name, kind in MODEL_OPTIONS.items():
        var = override_var(model.name, name)
        text = environ.get(var)
        if text is None or text.strip() == "":
            continue
        try:
            out[name] = check_model_option(name, _parse(kind, text.strip()))
        except ValueError as e:
            raise ValueError(f"{var}={text!r}: {e}") from None
    return out


def settings(model: Model, environ: Mapping[str, str] | None = None) -> ModelSettings:
    """Resolve `model` (its string, endpoint and decoding defaults) against `environ`."""
    opts = options(model, environ)
    endpoint = None
    if any(k in opts for k in ENDPOINT):
        endpoint = Endpoint(**{k: opts[k] for k in ENDPOINT if k in opts})
    decoding = tuple((k, opts[k]) for k in DECODING if k in opts)
    refused = refuse_secret_model(model.name, model.env)  # an edited artifact: compiled ones never do
    if refused:
        raise ValueError(refused)
    return ModelSettings(model=model.resolve(environ), endpoint=endpoint, decoding=decoding)


def litellm_params(
    endpoint: Endpoint | None, model: str, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The `litellm.acompletion` arguments for `endpoint`: api_base and api_key.

    Raises ValueError when the declared key variable is not set (the call cannot succeed).
    """
    if endpoint is None:
        return {}
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    if endpoint.base_url:
        out["api_base"] = endpoint.base_url
    if endpoint.key_env:
        key = environ.get(endpoint.key_env)
        if not key:
            raise ValueError(f"the environment variable {endpoint.key_env} (the model's key_env) is not set")
        out["api_key"] = key
    elif endpoint.base_url and not environ.get(f"{model.split('/', 1)[0].upper()}_API_KEY"):
        out["api_key"] = NO_KEY
    return out


def _parse(kind: type, text: str) -> Any:
    if kind is str:
        return text
    if kind is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("needs true or false")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"needs {'an integer' if kind is int else 'a number'}") from None


# --- typed outputs on providers that take a JSON schema ------------------------------------

ENUM_FIELD = "label"


def supports_schema(litellm: Any, model: str, endpoint: Endpoint | None) -> bool:
    """Whether a `response_format` JSON schema may be sent to `model` (not for the custom
    providers, which get `response_format` and `choices` their own way): the declaration's
    `response_schema` if given, else what litellm's model table reports."""
    if endpoint is not None and endpoint.response_schema is not None:
        return endpoint.response_schema
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # an unknown model or provider: litellm does not know, so no
        return False


def enum_schema(labels: tuple[str, ...] | list[str]) -> dict:
    """An enum output as a JSON schema: one field, constrained to the labels (providers
    take objects, not bare strings, at the top of a schema)."""
    return {
        "type": "object",
        "properties": {ENUM_FIELD: {"type": "string", "enum": list(labels)}},
        "required": [ENUM_FIELD],
        "additionalProperties": False,
    }


def unwrap_enum(text: str) -> str:
    """The label in a reply to `enum_schema` (`{"label": "LOC"}` -> `LOC`); any other text
    is returned as it is, for the tolerant parser."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return text
    if isinstance(value, dict) and isinstance(value.get(ENUM_FIELD), str):
        return value[ENUM_FIELD]
    return text
