"""Selective backward: textual gradients from the metric's verdict back to every trainable param.

Only samples whose score is below `threshold` are differentiated. For each of them the
metric's verdict (input, expected, got, score) becomes the loss text on the workflow's
output, and the interpreter runs the program's backward program on the sample's trace
(`Interpreter.backward`; the gradient nodes and their rules are in
`promptc.passes.gradient`, what the rules do with text in `promptc.optim.backprop`) — the
micrograd loop, with text for numbers:

    for gradient node in program.backward:        # pruned and ordered at compile time
        value[node] = handler[node.op](node)      # loss | sum of feedback | rule of a node

What a rule sends to a trainable param becomes a `Gradient`. Gradients keep the node's
loop time index, so the optimizer can show a param used at several loop steps in time
order. This module also says which model the backward, optimizer and teacher calls use.
"""

from __future__ import annotations

import asyncio

from attrs import frozen

from promptc.ir import Program, TimeIndex
from promptc.optim import fit, templates
from promptc.optim.backprop import show
from promptc.runtime.interpreter import Interpreter
from promptc.runtime.records import Trace


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
    interp = Interpreter(program, engine, phase=phase, functions={}, model=model, context=context)
    sem = asyncio.Semaphore(max(1, concurrency))
    losses = [loss_feedback(program, traces[i], batch[i], scores[i]) for i in failing]

    async def run(i: int, loss: str):
        async with sem:
            return await interp.backward(traces[i], loss, sample=i)

    frames = await asyncio.gather(*(run(i, l) for i, l in zip(failing, losses)))
    pos = {n.name: i for i, n in enumerate(program.nodes)}
    items = [Gradient(p, f.sample, text, g.node, g.time) for f in frames for p, text, g in f.gradients]
    items.sort(key=lambda g: (g.sample, g.step if g.step is not None else -1, pos.get(g.node, 0)))
    return Gradients(
        items=tuple(items),
        samples=tuple(failing),
        losses=tuple(zip(failing, losses)),
        calls=sum(f.calls for f in frames),
        fallbacks=sum(f.fallbacks for f in frames),
    )
