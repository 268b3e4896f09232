"""Pass 6 — the backward program (textual gradients) as IR: gradient nodes.

As in JAX, differentiation is a table and a walk that applies it. `EMIT: op -> emit`
gives the compile-time half of each node kind's rule: what its gradient node feeds. The
run-time half, what that node does with the feedback on the node's output, is
`promptc.optim.rules.RULES`, run by `promptc.optim.backward.Backward` (the interpreter of
backward programs). Adding a node kind is one entry in each table; neither walk changes,
and each table asserts at import that it covers the op set.

The walk:

1. forward, in topological order: a node *requires a gradient* when its rule feeds
   something, i.e. a trainable param (an `llm` that uses one) or an argument that requires
   a gradient. Feedback on any other node could reach no param, so it is never computed.
2. backward, in reverse topological order from the workflow's output: for each node that
   requires a gradient and whose value reaches the output, a `sum` node (the feedback the
   value received from its consumers, in the order they ran) and its rule's `grad` node.
   The output's feedback starts with the `loss` node.

So the program is already pruned (only what reaches a trainable param from the output)
and ordered (the interpreter runs it front to back). Names: `loss`; `V.grad`, the feedback
on forward value V (PyTorch's `.grad`); `V.back`, the rule of V's node.

What each rule feeds (its `feeds`, in order), and what it does at run time:

- llm: the trainable params it uses (template params and its demos param, in first-use
  order), then its arguments that require a gradient. ONE backward-engine call per node
  per failing sample turns the feedback on its output into feedback on each feed.
- call: its arguments that require a gradient; the feedback passes through, annotated
  with the function's name and docstring (`function`, `doc`).
- field, index, list, prim: its arguments that require a gradient; the feedback passes
  through as is.
- select: the two branches (not the condition): feedback goes to whichever ran (a loop
  step or the previous value; the `if` branch the condition `cond` took). Nodes of the
  branch that did not run are not executed, so they send no feedback.
- guard, input, const: no rule. A guard is control (whether a loop step or a branch ran),
  not a value the output is made of: feedback does not flow through it, nor into the
  condition of a select (a router's classifier learns nothing from the branches).

Gradient nodes keep the forward node's time index, so the gradients of a param used at
several loop steps keep their step and the optimizer sees them in time order.
"""

from __future__ import annotations

from typing import Any, Callable

from attrs import define

from promptc.ir import OPS, GradNode, Node, Program

LOSS = "loss"


def grad_name(value: str) -> str:
    """The name of the `sum` node holding the feedback on forward value `value`."""
    return value + ".grad"


def back_name(value: str) -> str:
    """The name of the `grad` node of forward node `value`."""
    return value + ".back"


@define
class Context:
    """What `emit` may consult: the program, the nodes that require a gradient (so far, in
    topological order), and the trainable params each `llm` uses."""

    program: Program
    requires: set[str]
    params: dict[str, tuple[str, ...]]  # llm name -> trainable params it uses

    def upstream(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """The `args` that require a gradient, without repeats."""
        return tuple(dict.fromkeys(a for a in args if a in self.requires))


def _grad(node: Node, feeds: tuple[str, ...], **fields: Any) -> GradNode:
    return GradNode(
        back_name(node.name), "grad", node.name, (grad_name(node.name),), node.op, feeds, node.time, node.span, **fields
    )


def _llm(node: Node, cx: Context) -> GradNode:
    params = cx.params.get(node.target, ())
    return _grad(node, tuple(dict.fromkeys(params + cx.upstream(node.args))), llm=str(node.target))


def _call(node: Node, cx: Context) -> GradNode:
    try:
        doc = cx.program.function(node.target).doc
    except KeyError:
        doc = ""
    return _grad(node, cx.upstream(node.args), function=str(node.target), doc=doc)


def _passthrough(node: Node, cx: Context) -> GradNode:
    return _grad(node, cx.upstream(node.args))


def _select(node: Node, cx: Context) -> GradNode:
    cond, if_true, if_false = node.args
    variable = node.target if isinstance(node.target, str) else ""
    return _grad(node, cx.upstream((if_true, if_false)), cond=cond, branches=(if_true, if_false), variable=variable)


Emit = Callable[[Node, Context], GradNode]

# op -> what its gradient node feeds; None: feedback stops there (guards, inputs, consts).
# `loop` is absent: loops are unrolled before this pass.
EMIT: dict[str, Emit | None] = {
    "llm": _llm,
    "call": _call,
    "field": _passthrough,
    "index": _passthrough,
    "list": _passthrough,
    "prim": _passthrough,
    "select": _select,
    "guard": None,
    "input": None,
    "const": None,
}

assert set(EMIT) == set(OPS) - {"loop"}, "EMIT covers every op but loop"


def gradient(program: Program) -> Program:
    trainable = {p.name for p in program.params if p.trainable}
    seeds = {l.name: tuple(u for u in l.uses if u in trainable) for l in program.llms}
    nodes = program.workflow.nodes
    cx = Context(program, set(), seeds)
    # forward: which nodes feed something (a trainable param is upstream)
    made: dict[str, GradNode] = {}
    for n in nodes:
        if n.op not in EMIT:
            raise ValueError(f"the gradient pass has no rule for node kind '{n.op}' (unroll loops first)")
        emit = EMIT[n.op]
        if emit is None:  # guards, inputs, consts: feedback stops here
            continue
        g = emit(n, cx)
        if g.feeds:
            cx.requires.add(n.name)
            made[n.name] = g
    # backward: from the loss on the output, the nodes it reaches, in reverse order
    out = program.workflow.output
    if out not in made:
        return program.with_pass("gradient", backward=())
    last = program.node(out)
    backward = [GradNode(LOSS, "loss", out, time=last.time, span=last.span)]
    consumers: dict[str, list[str]] = {out: [LOSS]}
    for n in reversed(nodes):
        g = made.get(n.name)
        if g is None or n.name not in consumers:
            continue
        backward.append(GradNode(grad_name(n.name), "sum", n.name, tuple(consumers[n.name]), time=n.time, span=n.span))
        backward.append(g)
        for f in g.feeds:
            if f in made:
                consumers.setdefault(f, []).append(g.name)
    return program.with_pass("gradient", backward=tuple(backward))
