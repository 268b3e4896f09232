"""Selective backward: textual gradients from the metric's verdict back to every trainable param.

Only samples whose score is below `threshold` are differentiated. For each of them the
metric's verdict (input, expected, got, score) becomes the loss text on the workflow's
output, and `Backward`, the interpreter of backward programs, runs the program's backward
program on the sample's trace — the micrograd loop, with text for numbers:

    for gradient node in program.backward:        # pruned and ordered at compile time
        value[node] = handler[node.op](node)      # loss | sum of feedback | rule of a node

As torch.fx's transformations, `Backward` is a subclass of the one `Interpreter`
(promptc.runtime.interpreter) adding a handler per gradient op (`promptc.ir.GRAD_OPS`):
`op_loss` starts from the loss text on the output, `op_sum` gathers the feedback a value
received from its consumers, and `op_grad` applies the run-time rule of the node's kind
(`promptc.optim.rules.RULES`; what the gradient node feeds was fixed at compile time by
`promptc.passes.gradient.EMIT`) when the node received feedback and ran. The trace is
indexed by node name, so a sample's backward run is linear in the number of nodes.

What a rule sends to a trainable param becomes a `Gradient`. Gradients keep the node's
loop time index, so the optimizer can show a param used at several loop steps in time
order. Which model answers backward calls is `promptc.optim.roles.backward_model`.
"""

from __future__ import annotations

import asyncio

from attrs import frozen

from promptc.ir import GRAD_OPS, GradNode, Program, TimeIndex
from promptc.optim import fit, templates
from promptc.optim.roles import backward_model
from promptc.optim.rules import RULES, show
from promptc.runtime.interpreter import Frame, Interpreter, ProgramError
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


# -- the interpreter of backward programs -------------------------------------------------

class GradFrame(Frame):
    """The state of one sample's backward run: its forward trace, the loss text on the
    output, what the run sent to trainable params, and the backward-engine calls made."""

    def __init__(self, trace: Trace, loss: str, sample: int = 0):
        super().__init__(dict(trace.inputs))
        self.trace = trace
        self.loss = loss
        self.sample = sample
        self.gradients: list[tuple[str, str, GradNode]] = []  # (param, feedback, gradient node)
        self.calls = 0
        self.fallbacks = 0  # llm rules whose JSON reply was unusable


class Backward(Interpreter):
    """Runs a program's backward program on one sample's trace (`backward`).

    `model` and `context` are the backward engine's model string and context window
    (tokens; None: nothing is fitted). No forward function is bound.
    """

    def __init__(self, program: Program, engine, *, model: str, context: int | None = None, phase: str = "backward"):
        super().__init__(program, engine, phase=phase, functions={})
        self.model = model
        self.context = context
        for g in program.backward:
            if g.op not in GRAD_OPS:
                raise ProgramError(f"gradient node {g.name!r} has unknown op {g.op!r}")

    async def backward(self, trace: Trace, loss: str, sample: int = 0) -> GradFrame:
        """One sample's trace through the backward program, `loss` being the feedback on
        the output. The program is already pruned and ordered: one visit per node."""
        frame = GradFrame(trace, loss, sample)
        for g in self.program.backward:
            frame.values[g.name] = await self.dispatch(g, frame)
        return frame

    async def op_loss(self, g: GradNode, frame: GradFrame) -> dict[str, str]:
        return {g.node: frame.loss}

    async def op_sum(self, g: GradNode, frame: GradFrame) -> list[str]:
        """The feedback on value `g.node`: what each consumer sent it, in the order they ran."""
        out = []
        for a in g.args:
            sent = self.fetch(a, frame)
            if sent and g.node in sent:
                out.append(sent[g.node])
        return out

    async def op_grad(self, g: GradNode, frame: GradFrame) -> dict[str, str]:
        """The rule of forward node `g.node`, when it received feedback and ran."""
        feedback = self.fetch(g.args[0], frame)
        if not feedback:
            return {}
        try:
            rec = frame.trace.record(g.node)
        except KeyError:
            return {}
        if not rec.executed:
            return {}
        rule = RULES.get(g.rule)
        if rule is None:
            raise ProgramError(f"gradient node {g.name!r}: no rule for node kind {g.rule!r}")
        sent = await rule(self, frame, g, feedback)
        frame.gradients.extend((f, text, g) for f, text in sent.items() if f in self.trainable)
        return sent


assert all(hasattr(Backward, "op_" + op) for op in GRAD_OPS), "every gradient op has a handler"


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
    interp = Backward(program, engine, phase=phase, model=model, context=context)
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
