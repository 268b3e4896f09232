"""What crosses to litellm and back: a `CallRequest` as litellm's arguments, a provider's
response as a plain `Answer`, an `Answer` as a `CallResult`.

    kwargs = litellm_kwargs(req, extra_params, timeout, litellm)
    answer = answer_of(litellm, resp, model)           # where the call ran (executor.py)
    result, believable = read_response(req, answer)    # in the engine; attempts/seconds: its own

An `Answer` is what an executor hands back, wherever the call ran (the engine's threads,
a Ray actor on another machine): the text, the provider's token counts and the price,
plain values that pickle. `read_response` checks what the provider said: no choices, no
text or an empty answer is a result with `error` (a failed attempt, never cached); the
token counts and the cost go through `accounting.checked_usage` (`believable` False:
they could not be true and are counted as 0); the text is scrubbed of every key promptc
sent (a proxy may echo its request headers in the answer) before anything stores or
shows it.

Typed outputs: record/list/json outputs send their JSON schema as `response_format`, and
enum outputs a one-field object schema (`endpoint.enum_schema`, unwrapped from the reply),
where the provider takes one (`endpoint.supports_schema`); elsewhere the prompt's JSON
instruction and the tolerant parser do the work.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from promptc.runtime import endpoint as endpoints
from promptc.runtime import hosted, providers
from promptc.runtime.accounting import checked_usage, reported_tokens
from promptc.runtime.failures import scrub_answer
from promptc.runtime.records import CallRequest, CallResult


@frozen
class Answer:
    """A provider's response as plain values. Token counts are the provider's, None where
    it gave no whole number (the engine checks them against the request); `problem` says
    why the response holds no answer (no choices, a malformed first choice), None when
    it does."""

    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float = 0.0
    problem: str | None = None


def answer_of(litellm: Any, resp: Any, model: str) -> Answer:
    """The `Answer` of litellm's response `resp` to a call of `model` (the custom
    providers, which answer in-process, cost nothing)."""
    try:
        choices = resp.choices
        text = choices[0].message.content if choices else None
        problem = "a response with no choices" if not choices else None
    except (AttributeError, IndexError, KeyError, TypeError):
        text, problem = None, "a malformed response (no message in its first choice)"
    if problem is not None:
        return Answer(None, problem=problem)
    prompt, completion = reported_tokens(getattr(resp, "usage", None))
    cost = 0.0 if providers.is_custom(model) else hosted.cost(litellm, resp, model)
    return Answer(text if isinstance(text, str) else None, prompt, completion, cost)


def litellm_kwargs(req: CallRequest, extra_params: dict[str, Any], timeout: float, litellm: Any = None) -> dict[str, Any]:
    """The `litellm.completion` arguments of `req` (see engine.py for what each provider gets)."""
    ep = req.endpoint
    params = endpoints.litellm_params(ep, req.model)
    if params.get("api_key") == endpoints.NO_KEY and extra_params.get("api_key"):
        del params["api_key"]  # a key given to the engine beats the keyless placeholder
    kwargs: dict[str, Any] = {
        **extra_params,
        **params,
        "model": req.model,
        "messages": [dict(m) for m in req.messages],
        "temperature": req.temperature,
        "max_tokens": req.max_tokens,
        "seed": req.seed,
        "timeout": timeout,
        "num_retries": 0,
        "max_retries": 0,
    }
    if req.top_p is not None:
        kwargs["top_p"] = req.top_p
    if providers.is_custom(req.model):
        if req.response_format is not None:
            kwargs["response_format"] = to_response_format(req.response_format)
        providers.register_price(req.model)
        kwargs["extra_body"] = {"promptc": {"choices": list(req.choices)}}
    elif (req.response_format is not None or req.choices) and endpoints.supports_schema(
        litellm or providers.ensure_litellm(), req.model, ep
    ):
        schema = req.response_format if req.response_format is not None else endpoints.enum_schema(req.choices)
        kwargs["response_format"] = to_response_format(schema)
    return kwargs


def read_response(req: CallRequest, answer: Answer) -> tuple[CallResult, bool]:
    """(the answer, or a result with `error`; whether its usage was believable)."""
    text, problem = answer.text, answer.problem
    if problem is None and not isinstance(text, str):
        problem = "a response with no text content"
    elif problem is None and text == "":
        problem = "an empty answer"
    if problem is not None:
        return CallResult(text=None, error=f"{problem} from {req.model}"), True
    prompt, completion, cost = answer.prompt_tokens, answer.completion_tokens, answer.cost
    prompt, completion, cost, believable = checked_usage(
        prompt, completion, cost, req.messages, req.max_tokens, text, req.response_format
    )
    text = scrub_answer(text)
    if text and req.choices and req.response_format is None and not providers.is_custom(req.model):
        text = endpoints.unwrap_enum(text)  # sent as enum_schema, or free text: both fine
    return CallResult(text=text, prompt_tokens=prompt, completion_tokens=completion, cost=cost), believable


def to_response_format(schema: dict) -> dict:
    """The litellm/OpenAI response_format for a JSON schema (already wrapped ones pass)."""
    if schema.get("type") in ("json_schema", "json_object") and ("json_schema" in schema or schema["type"] == "json_object"):
        return schema
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
