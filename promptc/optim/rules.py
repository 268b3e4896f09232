"""The run-time half of the gradient rules: what each `grad` node does with text.

The gradient pass (`promptc.passes.gradient.EMIT`) says, at compile time, what each node
kind's gradient node feeds; `RULES` here says what it computes. `Backward`
(promptc.optim.backward) calls `RULES[gnode.rule]` for every `grad` node that received
feedback and whose forward node ran. Each rule takes `(backward, frame, gnode, feedback)`
(the interpreter running the backward program, the sample's frame, the gradient node, the
feedback texts on the node's output) and returns {feed: feedback text}:

  llm          ONE backward-engine call per node per failing sample, asking for feedback
               on every feed at once as a JSON object {"<feed>": "feedback", ...}; when the
               reply cannot be parsed, one call per missing feed (plain text).
  call         the feedback goes to every feed, annotated with the function's name and
               docstring (the gradient node's `function` and `doc`).
  passthrough  field / index / list / prim: the feedback goes to every feed as is.
  select       the feedback goes to the branch the condition took (a loop step after a
               break: the previous value).

Each backward-engine prompt is fitted to the backward model's context window (fit.py):
when the full rendering leaves no room for the reply, it is rendered again at the next of
`FIT_LEVELS` (repeated feedback once, then the call's messages cut longest first, the
output, the feedback and the upstream values shortened, all marked `…[cut]`). The wording
is in `templates/` (backward_system, backward_llm, backward_feed, passthrough).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from attrs import frozen

from promptc.ir import GradNode, TimeIndex
from promptc.optim import fit, templates
from promptc.passes.gradient import EMIT
from promptc.runtime.records import CallRequest
from promptc.runtime.jsontext import loads_tolerant

log = logging.getLogger(__name__)

MAX_SHOW = 800  # characters of a value or message shown to the backward engine
MAX_MESSAGE = 1500  # characters of each message of the call shown to the backward engine
MAX_TOKENS = 512  # of a backward-engine reply


@frozen
class Shown:
    """How much of a backward-engine prompt is shown (one fitting level, see `FIT_LEVELS`).

    message_chars: each message of the call (None: `messages_total` characters shared
    by all messages, the longest cut first); output_chars: the step's output; feedback:
    the feedback texts on the output (dedupe: a repeated one once), each cut to
    feedback_chars; value_chars: each upstream value fed to the step.
    """

    message_chars: int | None = MAX_MESSAGE
    messages_total: int = 0
    output_chars: int = MAX_SHOW
    dedupe: bool = False
    feedback: int = 1_000
    feedback_chars: int = 100_000
    value_chars: int = 300


FIT_LEVELS = (
    Shown(),
    Shown(dedupe=True),
    Shown(dedupe=True, message_chars=None, messages_total=4000, feedback_chars=1000),
    Shown(dedupe=True, message_chars=None, messages_total=2000, output_chars=400, feedback=6, feedback_chars=500, value_chars=200),
    Shown(dedupe=True, message_chars=None, messages_total=1000, output_chars=200, feedback=3, feedback_chars=300, value_chars=100),
    Shown(dedupe=True, message_chars=None, messages_total=400, output_chars=120, feedback=1, feedback_chars=200, value_chars=60),
)


def show(value: Any, limit: int = MAX_SHOW) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return fit.cut(text, limit)


def show_messages(messages: tuple[dict, ...] | list[dict], shown: Shown = Shown()) -> str:
    contents = [str(m.get("content") or "") for m in messages]
    if shown.message_chars is not None:
        contents = [fit.cut(c, shown.message_chars) for c in contents]
    else:
        contents = fit.share(contents, shown.messages_total)
    return "\n".join(f"[{m.get('role', '?')}] {c}" for m, c in zip(messages, contents))


def parse_feedback(text: str | None, feeds: list[str]) -> dict[str, str]:
    """The JSON object of an llm-rule reply, restricted to the feeds asked for."""
    data, _ = loads_tolerant(text or "")
    if not isinstance(data, dict):
        return {}
    out = {}
    for f in feeds:
        v = data.get(f)
        if v is not None:
            out[f] = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return out


async def ask(interp, frame, user: Callable[[Shown], str], response_format: dict | None = None) -> str | None:
    """Ask the backward engine; `user` renders the user message at a fitting level."""
    system = {"role": "system", "content": templates.render("backward_system")}
    messages, _ = fit.first_fitting(
        lambda shown: (system, {"role": "user", "content": user(shown)}),
        FIT_LEVELS,
        fit.budget(interp.context, MAX_TOKENS),
    )
    req = CallRequest(
        model=interp.model, messages=messages, max_tokens=MAX_TOKENS, response_format=response_format, phase=interp.phase
    )
    frame.calls += 1
    res = await interp.engine.call(req)
    if res.error:
        log.warning("backward call failed (sample %d): %s", frame.sample, res.error)
        return None
    return res.text


def _time_text(time: TimeIndex | None) -> str:
    return f" (loop `{time.loop}`, step {time.step})" if time else ""


def _joined(feedback: list[str]) -> str:
    return " / ".join(feedback)


async def llm(interp, frame, g: GradNode, feedback: list[str]) -> dict[str, str]:
    program = interp.program
    rec = frame.trace.record(g.node)
    arg_of = dict(zip(program.node(g.node).args, (n for n, _ in program.llm(g.llm).params)))
    feeds = list(g.feeds)

    def feed_lines(shown: Shown) -> list[str]:
        lines = []
        for f in feeds:
            try:
                p = program.param(f)
            except KeyError:
                arg = arg_of.get(f)
                where = f"passed as argument `{arg}`" if arg else "an upstream value"
                value = show(frame.trace.value(f), shown.value_chars)
                lines.append(f"- `{f}` ({where}, computed earlier in the workflow): {value}")
                continue
            what = "trainable demos (few-shot examples)" if p.kind == "demos" else "trainable prompt"
            lines.append(f"- `{f}` ({what}; role: {p.role or 'not stated'})")
        return lines

    def common(shown: Shown) -> dict[str, str]:
        shown_feedback = fit.dedupe(feedback) if shown.dedupe else list(feedback)
        return dict(
            node=g.node,
            time=_time_text(g.time),
            messages=show_messages(rec.messages, shown),
            output=show(rec.raw if rec.raw is not None else rec.value, shown.output_chars)
            + (f"\n(error: {rec.error})" if rec.error else ""),
            feedback="\n".join(f"- {fit.cut_lines(t, shown.feedback_chars)}" for t in shown_feedback[: shown.feedback]),
        )

    schema = {
        "type": "object",
        "properties": {f: {"type": "string"} for f in feeds},
        "required": list(feeds),
        "additionalProperties": False,
    }
    example = json.dumps({f: "..." for f in feeds})
    reply = await ask(
        interp,
        frame,
        lambda shown: templates.render("backward_llm", feeds="\n".join(feed_lines(shown)), example=example, **common(shown)),
        schema,
    )
    got = parse_feedback(reply, feeds)
    missing = [f for f in feeds if f not in got]
    if missing:
        frame.fallbacks += 1
        log.info("backward: node %s sample %d: JSON reply unusable for %s; asking per feed", g.node, frame.sample, missing)
        for f in missing:
            i = feeds.index(f)
            text = await ask(
                interp,
                frame,
                lambda shown, i=i, f=f: templates.render("backward_feed", feed=feed_lines(shown)[i], name=f, **common(shown)),
            )
            if text and text.strip():
                got[f] = text.strip()
    return {f: got[f] for f in feeds if f in got and got[f].strip()}


async def call(interp, frame, g: GradNode, feedback: list[str]) -> dict[str, str]:
    doc = " ".join(g.doc.split()) or "-"
    text = templates.render("passthrough", function=g.function or g.rule, doc=doc, feedback=_joined(feedback))
    return dict.fromkeys(g.feeds, text)


async def passthrough(interp, frame, g: GradNode, feedback: list[str]) -> dict[str, str]:
    return dict.fromkeys(g.feeds, _joined(feedback))


async def select(interp, frame, g: GradNode, feedback: list[str]) -> dict[str, str]:
    try:
        taken = g.branches[0] if frame.trace.value(g.cond) else g.branches[1]
    except (KeyError, IndexError):
        taken = None
    return {f: _joined(feedback) for f in g.feeds if taken is None or f == taken}


Rule = Callable[..., Awaitable[dict[str, str]]]

RULES: dict[str, Rule] = {
    "llm": llm,
    "call": call,
    "field": passthrough,
    "index": passthrough,
    "list": passthrough,
    "prim": passthrough,
    "select": select,
}

# one run-time rule for every node kind the gradient pass emits a gradient node for
assert set(RULES) == {op for op, emit in EMIT.items() if emit is not None}, "RULES and EMIT cover the same kinds"
