"""A reference evaluator for the tests: runs IR with prims only, before or after unrolling.

Structured loops are run directly (the meaning of a loop), straight-line code node by
node with guards and selects (the meaning of the unrolled program); the unroll tests
check that both agree.
"""

from __future__ import annotations

import operator

from promptc.ir import Node, Program

PRIM = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
    "ge": operator.ge, "add": operator.add, "and": lambda a, b: a and b, "or": lambda a, b: a or b,
    "not": operator.not_, "len": len,
}


def run(program: Program, inputs: dict, calls: dict | None = None) -> tuple[object, dict]:
    env = dict(inputs)
    executed: dict[str, bool] = {}
    _block(program.workflow.nodes, env, executed, calls or {})
    return env[program.workflow.output], executed


def _block(nodes: tuple[Node, ...], env: dict, executed: dict, calls: dict) -> None:
    for n in nodes:
        if n.guard is not None and not env[n.guard]:
            env[n.name] = None
            executed[n.name] = False
            continue
        executed[n.name] = True
        a = [env[x] for x in n.args]
        if n.op == "input":
            env[n.name] = env[n.target]
        elif n.op == "const":
            env[n.name] = n.target
        elif n.op == "prim":
            env[n.name] = PRIM[n.target](*a)
        elif n.op == "call":
            env[n.name] = calls[n.target](*a)
        elif n.op == "guard":
            env[n.name] = bool(a[0]) and not a[1]
        elif n.op == "select":
            env[n.name] = a[1] if a[0] else a[2]
        elif n.op == "list":
            env[n.name] = list(a)
        elif n.op == "index":
            env[n.name] = a[0][n.target]
        elif n.op == "field":
            env[n.name] = a[0][n.target]
        elif n.op == "loop":
            lp = n.loop
            cur = {v: env[init] for v, init, _ph in lp.carried}
            steps = lp.bound if lp.items is None else min(lp.bound, len(env[lp.items]))
            for s in range(steps):
                inner = dict(env)
                if lp.index:
                    inner[lp.index] = s
                if lp.item:
                    inner[lp.item] = env[lp.items][s]
                for v, _i, ph in lp.carried:
                    inner[ph] = cur[v]
                _block(lp.body, inner, executed, calls)
                for v, upd in lp.updates:
                    cur[v] = inner[upd]
                if lp.brk is not None and inner[lp.brk]:
                    break
            for v, res in lp.results:
                env[res] = cur[v]
        else:
            raise ValueError(n.op)
