"""Pass 6 — the backward program (textual gradients), one rule per node kind.

As in JAX, differentiation is a table, `RULES: op -> rule`, and a walk that applies it:
the walk visits the forward nodes in reverse topological order and asks each node's rule
for a `GradRule`. Adding a node kind means adding a table entry; the walk never changes.

Which nodes get a rule: those that *require a gradient*, i.e. that have a trainable
param upstream (an `llm` that uses one, or any node reading such a value). Feedback on
any other node could reach no param, so computing it would only cost backward calls.
On the TREC example (input -> classify -> strip -> first_word) every node after the
input gets exactly one rule.

What each rule feeds (the params and upstream values it sends feedback to, in order):

- llm ("llm"): the trainable params it uses (template params and its demos param, in
  first-use order), then its arguments that require a gradient; note = the llm's name.
  At run time it is one backward-engine call turning feedback on the output into
  feedback on each feed.
- call ("call"): its arguments that require a gradient; note = "name: docstring", so the
  backward engine knows what the function did to the value.
- field, index, list, prim ("passthrough"): arguments that require a gradient.
- select ("select"): the two branches (not the condition), feedback goes to whichever ran
  (a loop step or the previous value; the `if` branch the condition took). Nodes of the
  branch that did not run are not executed, so no feedback reaches them.
- guard, input, const: no rule. A guard is control (whether a loop step or a branch
  ran), not a value the output is made of; feedback does not flow through it, nor into
  the condition of a `select` (a router's classifier learns nothing from the branches).

`GradRule.time` is the node's time index, so gradients of a param used at several loop
steps keep their step and the optimizer sees them in time order.
"""

from __future__ import annotations

from typing import Callable

from attrs import define

from promptc.ir import GradRule, Node, Program

@define
class Context:
    """What a rule may consult: the program, the nodes that require a gradient, the
    trainable params each `llm` uses, and the functions' docstrings."""

    program: Program
    requires: set[str]
    params: dict[str, tuple[str, ...]]  # llm name -> trainable params it uses
    docs: dict[str, str]  # function name -> docstring

    def upstream(self, node: Node, args: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """The arguments of `node` that require a gradient, without repeats."""
        return tuple(dict.fromkeys(a for a in (node.args if args is None else args) if a in self.requires))


Rule = Callable[[Node, Context], "GradRule | None"]


def _llm_rule(node: Node, cx: Context) -> GradRule:
    return GradRule(node.name, "llm", cx.params.get(node.target, ()) + cx.upstream(node), node.time, str(node.target))


def _call_rule(node: Node, cx: Context) -> GradRule:
    doc = cx.docs.get(node.target, "")
    note = f"{node.target}: {doc}" if doc else str(node.target)
    return GradRule(node.name, "call", cx.upstream(node), node.time, note)


def _passthrough(node: Node, cx: Context) -> GradRule:
    note = f"{node.op} {node.target}" if node.target is not None else node.op
    return GradRule(node.name, "passthrough", cx.upstream(node), node.time, note)


def _select_rule(node: Node, cx: Context) -> GradRule:
    if isinstance(node.target, str):  # a variable merged after an `if`
        note = f"'{node.target}' after the if: only the branch %{node.args[0]} took"
    else:
        note = "loop-carried value"
    return GradRule(node.name, "select", cx.upstream(node, node.args[1:]), node.time, note)


RULES: dict[str, Rule | None] = {
    "llm": _llm_rule,
    "call": _call_rule,
    "field": _passthrough,
    "index": _passthrough,
    "list": _passthrough,
    "prim": _passthrough,
    "select": _select_rule,
    "guard": None,
    "input": None,
    "const": None,
}


def gradient(program: Program) -> Program:
    trainable = {p.name for p in program.params if p.trainable}
    seeds = {l.name: tuple(u for u in l.uses if u in trainable) for l in program.llms}
    nodes = program.workflow.nodes
    # forward: which nodes have a trainable param upstream
    requires: set[str] = set()
    for n in nodes:
        if RULES.get(n.op) is None:  # no rule (guards, inputs, consts): feedback stops here
            continue
        if n.op == "llm" and seeds.get(n.target):
            requires.add(n.name)
        else:
            for a in n.args:
                if a in requires:
                    requires.add(n.name)
                    break
    cx = Context(program, requires, seeds, {f.name: f.doc for f in program.functions})
    # backward: the walk, one rule per node kind
    rules = []
    for n in reversed(nodes):
        if n.op not in RULES:
            raise ValueError(f"the gradient pass has no rule for node kind '{n.op}' (unroll loops first)")
        rule = RULES[n.op]
        if rule is None or n.name not in requires:
            continue
        g = rule(n, cx)
        if g is not None:
            rules.append(g)
    return program.with_pass("gradient", backward=tuple(rules))
