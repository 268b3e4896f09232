"""Pass 4 — dead-code elimination.

A node is live when the workflow output needs its value: the output is live, and so is
every argument and the guard of a live node. Everything else is dropped, `llm` calls
included (a dead model call would only cost money). Input nodes are always kept: they
are the workflow's interface. Params are never touched, even when no live node uses
them (the trainer and the printer still show them).

One reverse walk over the topologically ordered nodes: linear. A loop node (if DCE runs
before unrolling) is kept whole when one of its results is live, and then everything its
body reads from outside is live.
"""

from __future__ import annotations

from promptc.ir import Node, Program, walk


def live_names(program: Program) -> set[str]:
    """Names of the nodes the output depends on (through arguments and guards)."""
    live = {program.workflow.output}
    for n in reversed(program.workflow.nodes):
        if n.op == "loop" and n.loop is not None:
            if n.name in live or any(r in live for _v, r in n.loop.results):
                live.add(n.name)
                live.update(_loop_reads(n))
                if n.guard is not None:
                    live.add(n.guard)
            continue
        if n.name in live:
            live.update(n.args)
            if n.guard is not None:
                live.add(n.guard)
    return live


def _loop_reads(n: Node) -> set[str]:
    assert n.loop is not None
    reads = {init for _v, init, _ph in n.loop.carried}
    if n.loop.items is not None:
        reads.add(n.loop.items)
    for b in walk(n.loop.body):
        reads.update(b.args)
        if b.guard is not None:
            reads.add(b.guard)
        if b.loop is not None:
            reads.update(init for _v, init, _ph in b.loop.carried)
            if b.loop.items is not None:
                reads.add(b.loop.items)
    return reads


def dce(program: Program) -> Program:
    live = live_names(program)
    nodes = tuple(n for n in program.workflow.nodes if n.name in live or n.op == "input")
    return program.with_pass("dce").with_nodes(nodes)
