"""Rendering an `llm` node's call: templates + params + arguments -> a `CallRequest`.

Rules (the contract the trainer and the backward engine rely on):

- `{name}` in a template is replaced by the text of the prompt param `name`, or by the
  value of the `llm` argument `name`. Text values are inserted as they are; any other
  value (numbers, bools, lists, records, json) is inserted as compact JSON. `{{` and `}}`
  are literal braces. A placeholder that names nothing, or a stray brace, is left as
  written (the compiler reports those before a program can run); the syntax is
  `promptc.template`'s.
- The demos param (`LlmDef.demos`) becomes user/assistant turn pairs placed just before
  the last user message: the user turn is the last user template rendered with the
  demo's inputs, the assistant turn is the demo's output (JSON when it is not text).
- A record, list or json output appends `JSON_INSTRUCTION` (with the JSON schema of the
  output type) to the last user message and sets `response_format` to that schema; an
  enum output sets `choices` to its labels, so engines that can constrain decoding do.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from promptc import template as T
from promptc.ir import Demo, LlmDef, Program
from promptc.runtime import endpoint
from promptc.runtime.records import CallRequest
from promptc.types import Type

JSON_INSTRUCTION = "Answer with JSON only, following this JSON schema:\n{schema}"

_STRUCTURED = ("record", "list", "json")


def format_value(value: Any) -> str:
    """The text a value takes inside a prompt: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_template(template: str, values: Mapping[str, Any]) -> str:
    """Substitute `{name}` from `values` (see the module doc for the rules)."""
    return T.render(template, values, show=format_value, strict=False)


def json_schema(t: Type) -> dict:
    """The JSON schema of a promptc type (used for `response_format` and the instruction)."""
    k = t.kind
    if k == "text":
        return {"type": "string"}
    if k == "enum":
        return {"type": "string", "enum": list(t.labels)}
    if k == "int":
        return {"type": "integer"}
    if k == "float":
        return {"type": "number"}
    if k == "bool":
        return {"type": "boolean"}
    if k == "list":
        return {"type": "array", "items": json_schema(t.elem) if t.elem is not None else {}}
    if k == "record":
        return {
            "type": "object",
            "properties": {n: json_schema(ft) for n, ft in t.fields},
            "required": [n for n, _ in t.fields],
            "additionalProperties": False,
        }
    return {}  # json: any value


def param_values(program: Program, llm: LlmDef) -> dict[str, str]:
    """The text of every prompt param the templates of `llm` may name, by that name
    (params of the llm's namespace: see `Program.template_params`)."""
    return {name: p.text for name, p in program.template_params(llm).items() if p.kind == "prompt"}


def render_messages(program: Program, llm: LlmDef, args: Mapping[str, Any]) -> tuple[dict, ...]:
    """The chat messages of one call of `llm` with argument values `args`."""
    values: dict[str, Any] = param_values(program, llm)
    values.update(args)
    last_user = max((i for i, m in enumerate(llm.messages) if m.role == "user"), default=None)
    demos = _demos(program, llm, args)
    out: list[dict] = []
    for i, msg in enumerate(llm.messages):
        if i == last_user and demos:
            for demo in demos:
                out.extend(_demo_turns(program, llm, msg.template, demo))
        out.append({"role": msg.role, "content": render_template(msg.template, values)})
    if last_user is None and demos:  # no user template: demos still go before the end
        for demo in demos:
            out.extend(_demo_turns(program, llm, "", demo))
    if llm.returns.kind in _STRUCTURED:
        schema = json.dumps(json_schema(llm.returns), ensure_ascii=False)
        instruction = JSON_INSTRUCTION.format(schema=schema)
        idx = _last_index(out, "user")
        if idx is None:
            out.append({"role": "user", "content": instruction})
        else:
            out[idx] = {"role": "user", "content": out[idx]["content"].rstrip() + "\n\n" + instruction}
    return tuple(out)


def build_request(
    program: Program, llm: LlmDef, args: Mapping[str, Any], *, phase: str = "forward", **decoding: Any
) -> CallRequest:
    """The `CallRequest` of one call of `llm`: messages, model, endpoint and decoding.

    Decoding: `decoding` given here wins over the model's declared defaults, which win
    over `CallRequest`'s. Raises ValueError for a bad environment override of the model.
    """
    response_format = json_schema(llm.returns) if llm.returns.kind in _STRUCTURED else None
    choices = tuple(llm.returns.labels) if llm.returns.kind == "enum" else ()
    model = endpoint.settings(program.model(llm.model))
    return CallRequest(
        model=model.model,
        messages=render_messages(program, llm, args),
        response_format=response_format,
        choices=choices,
        phase=phase,
        endpoint=model.endpoint,
        **{**dict(model.decoding), **decoding},
    )


def _demos(program: Program, llm: LlmDef, args: Mapping[str, Any]) -> tuple[Demo, ...]:
    if not llm.demos:
        return ()
    try:
        param = program.param(llm.demos)
    except KeyError:
        return ()
    if param.nearest:
        from promptc.runtime.nearest import select

        k = min(param.nearest, param.max_demos) if param.max_demos is not None else param.nearest
        return select(param.demos, args, k)
    demos = param.demos
    if param.max_demos is not None:
        demos = demos[: param.max_demos]
    return demos


def _demo_turns(program: Program, llm: LlmDef, user_template: str, demo: Demo) -> list[dict]:
    values: dict[str, Any] = param_values(program, llm)
    values.update(dict(demo.inputs))
    return [
        {"role": "user", "content": render_template(user_template, values)},
        {"role": "assistant", "content": format_value(demo.output)},
    ]


def _last_index(messages: list[dict], role: str) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == role:
            return i
    return None
