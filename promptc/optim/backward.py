"""The backward pass: textual gradients from the metric's verdict back to every trainable param.

Selective: only samples whose score is below `threshold` are differentiated. For each of
them the metric's verdict (input, expected, got, score) becomes the feedback on the
workflow's output value; then the backward program (`program.backward`, the gradient
pass's `GradRule`s) is walked in reverse topological order, keeping a list of feedback
texts per value name — the micrograd loop, with text for numbers:

    feedback = {output: [loss]}
    for rule in reversed topological order:
        if the node has feedback and ran:  RULE[kind](rule, feedback[node]) -> (feed, text)*

Rules, one per node kind (a table, as in autodidax):
  llm          ONE backward-engine call per node per failing sample, asking for feedback
               on every feed at once as a JSON object {"<feed>": "feedback", ...}; when the
               reply cannot be parsed, one call per missing feed (plain text).
  select       feedback goes to the branch the condition took (a loop step after a break).
  guard        control only: no feedback flows to the condition.
  (others)     functional / passthrough: the feedback goes to every feed, annotated with
               the function's name and docstring (`GradRule.note`).

Each backward-engine prompt is fitted to the backward model's context window (fit.py):
when the full rendering leaves no room for the reply, it is rendered again at the next of
`FIT_LEVELS` (repeated feedback once, then the call's messages cut longest first, the
output, the feedback and the upstream values shortened, all marked `…[cut]`).

A feed that is a trainable param yields a `Gradient`; a feed that is a value keeps
flowing upstream — but only values from which a trainable param can be reached are asked
about at all ("live" values), so no tokens are spent on inputs and constants. Nodes that
did not run (guard false) are skipped. Gradients keep the node's loop time index, so the
optimizer can show a param used at several loop steps in time order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from attrs import frozen

from promptc.ir import GradRule, Node, Program, TimeIndex
from promptc.optim import fit, templates
from promptc.runtime.records import CallRequest, Trace
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


@frozen
class Gradient:
    """Feedback on one trainable param from one failing sample at one node (and loop step)."""

    param: str
    sample: int
    text: str
    node: str
    time: TimeIndex | None = None

    @property
    def step(self) -> int | None:
        return None if self.time is None else self.time.step


@frozen
class Gradients:
    """The result of one backward pass.

    items: every gradient, ordered by (sample, loop step, node order).
    samples: the batch indices that were differentiated (score < threshold).
    losses: (sample, loss feedback text) pairs.
    calls: backward-engine calls made (including fallbacks).
    fallbacks: how many llm rules needed the per-feed fallback.
    """

    items: tuple[Gradient, ...] = ()
    samples: tuple[int, ...] = ()
    losses: tuple[tuple[int, str], ...] = ()
    calls: int = 0
    fallbacks: int = 0

    def for_param(self, name: str) -> tuple[Gradient, ...]:
        return tuple(g for g in self.items if g.param == name)

    def by_sample(self, name: str) -> dict[int, list[Gradient]]:
        """The gradients of one param grouped by sample, each group in time order."""
        out: dict[int, list[Gradient]] = {}
        for g in self.for_param(name):
            out.setdefault(g.sample, []).append(g)
        return out

    def params(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for g in self.items:
            seen.setdefault(g.param, None)
        return tuple(seen)


# -- models ------------------------------------------------------------------------------

def resolve_model(program: Program, name: str | None) -> str | None:
    """A model declaration's resolved string, or `name` itself when it is a literal."""
    if not name:
        return None
    try:
        return program.model(name).resolve()
    except KeyError:
        return name


def task_model(program: Program) -> str:
    """The model of the first `llm` (the default for backward, optimizer and teacher)."""
    for llm in program.llms:
        m = resolve_model(program, llm.model)
        if m:
            return m
    if program.models:
        return program.models[0].resolve()
    raise ValueError("the program has no model")


def backward_model(program: Program) -> str:
    spec = program.train
    return resolve_model(program, spec.backward if spec else None) or task_model(program)


# -- helpers -----------------------------------------------------------------------------

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


def ordered_rules(program: Program) -> list[GradRule]:
    """The backward program in reverse topological order of the forward nodes."""
    pos = {n.name: i for i, n in enumerate(program.nodes)}
    return sorted(program.backward, key=lambda r: -pos.get(r.node, -1))


def live_values(program: Program) -> set[str]:
    """Values from which some trainable param can be reached by the backward program."""
    trainable = {p.name for p in program.trainable()}
    live: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in program.backward:
            if r.node not in live and any(f in trainable or f in live for f in r.feeds):
                live.add(r.node)
                changed = True
    return live


def loss_feedback(program: Program, trace: Trace, sample: dict, score: float) -> str:
    spec = program.train
    answer_key = spec.answer if spec else "answer"
    inputs = {k: v for k, v in trace.inputs} or {k: v for k, v in sample.items() if k != answer_key}
    explanation = getattr(score, "feedback", "")  # a metric that explains (runtime.evaluate.Score)
    return templates.render(
        "loss",
        metric=spec.metric if spec else "metric",
        score=f"{score:.3g}",
        explanation=f"\nThe metric explains: {explanation}" if explanation else "",
        inputs=show(inputs),
        expected=show(sample.get(answer_key)),
        got=show(trace.output),
        error=f"\nError: {trace.error}" if trace.error else "",
    )


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


# -- the walk ----------------------------------------------------------------------------

class _Sample:
    """The state of one sample's backward walk."""

    def __init__(
        self, program: Program, trace: Trace, index: int, engine, model: str, phase: str, context: int | None = None,
    ):
        self.program = program
        self.context = context
        self.trace = trace
        self.index = index
        self.engine = engine
        self.model = model
        self.phase = phase
        self.calls = 0
        self.fallbacks = 0

    async def ask(self, user: Callable[[Shown], str], response_format: dict | None = None) -> str | None:
        """Ask the backward engine; `user` renders the user message at a fitting level."""
        system = {"role": "system", "content": templates.render("backward_system")}
        messages, _ = fit.first_fitting(
            lambda shown: (system, {"role": "user", "content": user(shown)}),
            FIT_LEVELS,
            fit.budget(self.context, MAX_TOKENS),
        )
        req = CallRequest(
            model=self.model,
            messages=messages,
            max_tokens=MAX_TOKENS,
            response_format=response_format,
            phase=self.phase,
        )
        self.calls += 1
        res = await self.engine.call(req)
        if res.error:
            log.warning("backward call failed (sample %d): %s", self.index, res.error)
            return None
        return res.text


Rule = Callable[[_Sample, GradRule, Node, Any, list[str], list[str]], Awaitable[list[tuple[str, str]]]]


def _time_text(node: Node) -> str:
    return f" (loop `{node.time.loop}`, step {node.time.step})" if node.time else ""


async def llm_rule(s: _Sample, rule: GradRule, node: Node, rec, feedback: list[str], feeds: list[str]):
    program = s.program
    params = {p.name: p for p in program.params}
    llm = program.llm(node.target)
    arg_of = dict(zip(node.args, (n for n, _ in llm.params)))

    def feed_lines(shown: Shown) -> list[str]:
        lines = []
        for f in feeds:
            if f in params:
                p = params[f]
                what = "trainable demos (few-shot examples)" if p.kind == "demos" else "trainable prompt"
                lines.append(f"- `{f}` ({what}; role: {p.role or 'not stated'})")
            else:
                arg = arg_of.get(f)
                where = f"passed as argument `{arg}`" if arg else "an upstream value"
                lines.append(f"- `{f}` ({where}, computed earlier in the workflow): {show(s.trace.value(f), shown.value_chars)}")
        return lines

    def common(shown: Shown) -> dict[str, str]:
        shown_feedback = fit.dedupe(feedback) if shown.dedupe else list(feedback)
        return dict(
            node=node.name,
            time=_time_text(node),
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
    reply = await s.ask(
        lambda shown: templates.render("backward_llm", feeds="\n".join(feed_lines(shown)), example=example, **common(shown)),
        schema,
    )
    got = parse_feedback(reply, feeds)
    missing = [f for f in feeds if f not in got]
    if missing:
        s.fallbacks += 1
        log.info("backward: node %s sample %d: JSON reply unusable for %s; asking per feed", node.name, s.index, missing)
        for f in missing:
            i = feeds.index(f)
            text = await s.ask(
                lambda shown, i=i, f=f: templates.render("backward_feed", feed=feed_lines(shown)[i], name=f, **common(shown))
            )
            if text and text.strip():
                got[f] = text.strip()
    return [(f, got[f]) for f in feeds if f in got and got[f].strip()]


async def passthrough_rule(s: _Sample, rule: GradRule, node: Node, rec, feedback: list[str], feeds: list[str]):
    if node.op != "call":  # field / index / list / prim: the value passes through as is
        return [(f, " / ".join(feedback)) for f in feeds]
    note = rule.note
    if not note:
        try:
            fn = s.program.function(node.target)
            note = f"{fn.name}: {fn.doc}".strip()
        except KeyError:
            note = str(node.target)
    joined = " / ".join(feedback)
    if not note:
        return [(f, joined) for f in feeds]
    name, _, doc = note.partition(":")
    text = templates.render("passthrough", function=name.strip() or node.op, doc=" ".join(doc.split()) or "-", feedback=joined)
    return [(f, text) for f in feeds]


async def select_rule(s: _Sample, rule: GradRule, node: Node, rec, feedback: list[str], feeds: list[str]):
    cond, if_true, if_false = (node.args + (None, None, None))[:3]
    try:
        taken = if_true if s.trace.value(cond) else if_false
    except KeyError:
        taken = None
    return [(f, " / ".join(feedback)) for f in feeds if taken is None or f == taken]


async def guard_rule(s, rule, node, rec, feedback, feeds):
    return []


# dispatch: by node kind first (llm, select, guard), then by rule name, else passthrough
RULES_BY_OP: dict[str, Rule] = {"llm": llm_rule, "select": select_rule, "guard": guard_rule}
RULES_BY_NAME: dict[str, Rule] = {"llm": llm_rule, "select": select_rule, "guard": guard_rule}


async def _backward_one(s: _Sample, rules: list[GradRule], loss: str, live: set[str]) -> list[Gradient]:
    program = s.program
    trainable = {p.name for p in program.trainable()}
    feedback: dict[str, list[str]] = {program.workflow.output: [loss]}
    grads: list[Gradient] = []
    for rule in rules:
        fb = feedback.get(rule.node)
        if not fb:
            continue
        try:
            node = program.node(rule.node)
            rec = s.trace.record(rule.node)
        except KeyError:
            continue
        if not rec.executed:
            continue
        feeds = [f for f in dict.fromkeys(rule.feeds) if f in trainable or f in live]
        if not feeds:
            continue
        fn = RULES_BY_OP.get(node.op) or RULES_BY_NAME.get(rule.rule) or passthrough_rule
        for target, text in await fn(s, rule, node, rec, fb, feeds):
            if target in trainable:
                grads.append(Gradient(param=target, sample=s.index, text=text, node=node.name, time=node.time))
            else:
                feedback.setdefault(target, []).append(text)
    return grads


async def backward(
    program: Program,
    traces: list[Trace],
    batch: list[dict],
    scores: list[float],
    engine,
    *,
    threshold: float = 1.0,
    phase: str = "backward",
    concurrency: int = 8,
    model: str | None = None,
    context: int | None = None,
) -> Gradients:
    """Textual gradients for the trainable params from the samples scoring below `threshold`.

    context: the backward model's context window in tokens; None looks it up
    (`fit.context_window`). Every backward-engine prompt is fitted to it.
    """
    failing = [i for i, sc in enumerate(scores) if sc < threshold]
    model = model or backward_model(program)
    if context is None:
        context = fit.context_window(model)
    rules = ordered_rules(program)
    live = live_values(program)
    sem = asyncio.Semaphore(max(1, concurrency))
    states = [_Sample(program, traces[i], i, engine, model, phase, context) for i in failing]
    losses = [loss_feedback(program, traces[i], batch[i], scores[i]) for i in failing]

    async def run(s: _Sample, loss: str) -> list[Gradient]:
        async with sem:
            return await _backward_one(s, rules, loss, live)

    results = await asyncio.gather(*(run(s, l) for s, l in zip(states, losses)))
    pos = {n.name: i for i, n in enumerate(program.nodes)}
    items = [g for gs in results for g in gs]
    items.sort(key=lambda g: (g.sample, g.step if g.step is not None else -1, pos.get(g.node, 0)))
    return Gradients(
        items=tuple(items),
        samples=tuple(failing),
        losses=tuple(zip(failing, losses)),
        calls=sum(s.calls for s in states),
        fallbacks=sum(s.fallbacks for s in states),
    )
