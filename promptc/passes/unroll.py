"""Pass 3 — unroll loops into time steps (straight-line SSA).

A loop of bound N becomes N copies of its body, one per step s = 0 .. N-1 (for a
`for i in 0..N` loop, step s is the iteration where i == s):

- names: a body node `x` at step s of loop `hop` is renamed `x@hop#s`; a node of an inner
  loop gets both suffixes, outer first: `x@outer#1@inner#0`. A name already taken gets
  `.1`, `.2`, ... appended (deterministic: the walk order is fixed);
- time: every copied node gets `TimeIndex(label, s)`. Nested loops: the node gets the
  *innermost* loop's step, and that loop's label is qualified by the enclosing steps,
  e.g. `TimeIndex("outer#1/inner", 0)`, so the index stays one record yet orders all steps;
- the index placeholder becomes a `const` node `i@hop#s` holding s (dead ones are removed
  by DCE); each carried placeholder is substituted by the variable's current value;
- `break if c` (a `loop max` body): step s+1 and everything after it is guarded by
  `alive@hop#(s+1) = guard(alive@hop#s, c_s)`. Step 0 runs unguarded (or under the
  enclosing loop's guard); the chain then starts from a `const true` `alive@hop#0`, or from
  the enclosing guard. Guard nodes themselves are never guarded (a guard whose
  `alive_before` is false is false, whatever its condition);
- a carried variable updated in a guarded step becomes `v.sel@hop#s = select(alive@hop#s,
  update_s, previous)`; selects are not guarded (they choose the previous value when the
  step did not run);
- `for x in xs max N` (kind "each"): `len@x = len(xs)` once, then every step s is guarded
  by `alive@x#s = lt(s, len@x)` (and-ed with the enclosing guard), its element is the
  guarded node `x@x#s = index xs[s]`, and each carried variable gets a `select` at every
  step: a list shorter than N skips the steps past its end;
- a node guarded by its own condition (an `if` branch) inside a guarded step is guarded
  by `and(step guard, own guard)`, one such node per pair, shared by the branch's nodes;
- after the loop, each `Loop.results` name is an alias of the variable's final value:
  later nodes and the workflow output read the final value directly.

Loops are expanded outermost first: a copied inner loop is expanded in the context of
its outer step (names, guard, time), so guards of nested breaks compose correctly.
The pass is linear in the size of the unrolled program.

Size limit: before copying anything, the pass computes the unrolled program's size
(each step of a loop costs its body plus its index, guard and select nodes) and refuses a program over `max_nodes()` nodes (200,000, or the environment
variable `PROMPTC_MAX_NODES`) with a `CompileError` at the innermost loop that crosses
the limit, naming its label, its bound and the size. `for i in 0..1000000000` or thirty
nested `loop max 2` fail at once instead of filling memory.
"""

from __future__ import annotations

from collections import ChainMap
from typing import MutableMapping

import os

from attrs import evolve, frozen

from promptc.errors import CompileError
from promptc.ir import Node, Program, TimeIndex, walk
from promptc.types import BOOL, INT, JSON

Env = MutableMapping[str, str]

DEFAULT_MAX_NODES = 200_000


def max_nodes() -> int:
    """The largest unrolled program compiled: `PROMPTC_MAX_NODES`, else 200,000 nodes."""
    raw = os.environ.get("PROMPTC_MAX_NODES", "").strip()
    if not raw:
        return DEFAULT_MAX_NODES
    try:
        return int(raw)
    except ValueError:
        raise CompileError(f"PROMPTC_MAX_NODES must be a number of nodes, not {raw!r}") from None


def unrolled_size(nodes: tuple[Node, ...], limit: int) -> int:
    """An upper bound of the number of nodes `nodes` unroll to; a located error over `limit`."""
    total = 0
    for n in nodes:
        if n.op != "loop" or n.loop is None:
            total += 1
            continue
        lp = n.loop
        # what `_Unroller.loop` emits per step: the body, the index const, and with a break
        # the step's guard and one select per carried variable; plus an `and` per node that
        # has a guard of its own, and the `alive` const of step 0
        per_step = unrolled_size(lp.body, limit) + (lp.index is not None) + sum(1 for b in lp.body if b.guard is not None)
        if lp.brk is not None:
            per_step += 1 + len(lp.carried)
        # a step costs time even when it emits nothing (a body of aliases): count it as one
        size = lp.bound * max(1, per_step) + (lp.brk is not None)
        if size > limit:
            kind = f"for {lp.label} in 0..{lp.bound}" if lp.kind == "for" else f"loop max {lp.bound}"
            raise CompileError(
                f"loop '{lp.label}' (`{kind}`) unrolls to about {size:,} nodes ({lp.bound:,} steps of {per_step:,}), "
                f"more than the limit of {limit:,} (set PROMPTC_MAX_NODES to raise it)",
                n.span,
            )
        total += size
    return total


@frozen
class _Ctx:
    suffix: str = ""
    guard: str | None = None
    time: TimeIndex | None = None


class _Unroller:
    def __init__(self, program: Program):
        self.used: set[str] = set()
        for n in walk(program.workflow.nodes):
            self.used.add(n.name)
            if n.loop is not None:
                lp = n.loop
                self.used.update(ph for _v, _i, ph in lp.carried)
                self.used.update(r for _v, r in lp.results)
                if lp.index is not None:
                    self.used.add(lp.index)
        self.types: dict[str, object] = {}
        self.out: list[Node] = []
        self.conj: dict[tuple[str, str], str] = {}  # (outer, own) guard -> their `and` node

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}.{k}"
        self.used.add(name)
        return name

    def emit(self, node: Node) -> str:
        self.out.append(node)
        self.types[node.name] = node.type
        return node.name

    # -- straight-line code ----------------------------------------------------------
    def block(self, nodes: tuple[Node, ...], env: Env, ctx: _Ctx) -> None:
        top = ctx.suffix == ""
        for n in nodes:
            if n.op == "loop":
                self.loop(n, env, ctx)
                continue
            guard = env.get(n.guard, n.guard) if n.guard is not None else None
            guard = self.both(guard, ctx.guard, n, ctx)
            args = tuple(env.get(a, a) for a in n.args)
            # the constructor, not attrs.evolve: this runs once per emitted node
            if top:
                new = n if (args == n.args and guard == n.guard) else Node(n.name, n.op, args, n.target, n.type, n.span, n.time, guard, None)
            else:
                name = self.fresh(n.name + ctx.suffix)
                new = Node(name, n.op, args, n.target, n.type, n.span, ctx.time or n.time, guard, None)
                env[n.name] = name
            self.emit(new)

    def both(self, own: str | None, outer: str | None, n: Node, ctx: _Ctx) -> str | None:
        """The guard of a node under its own guard and its step's guard."""
        if own is None or own == outer:
            return outer
        if outer is None:
            return own
        key = (outer, own)
        if key not in self.conj:
            name = self.fresh(f"{own}.alive")
            self.conj[key] = self.emit(Node(name, "prim", (outer, own), "and", type=BOOL, span=n.span, time=ctx.time))
        return self.conj[key]

    # -- one loop --------------------------------------------------------------------
    def loop(self, n: Node, env: Env, ctx: _Ctx) -> None:
        lp = n.loop
        assert lp is not None
        outer_guard = self.both(env.get(n.guard, n.guard) if n.guard else None, ctx.guard, n, ctx)
        label = f"{ctx.time}/{lp.label}" if ctx.time is not None else lp.label
        current = {var: env.get(init, init) for var, init, _ph in lp.carried}
        alive = outer_guard  # the guard of the current step
        prev_cond: str | None = None
        length = None
        if lp.items is not None:  # fan-out: how many steps run is the list's length
            items = env.get(lp.items, lp.items)
            length = self.emit(
                Node(self.fresh(f"len{ctx.suffix}@{lp.label}"), "prim", (items,), "len", INT, n.span, ctx.time, outer_guard)
            )
        for s in range(lp.bound):
            suffix = f"{ctx.suffix}@{lp.label}#{s}"
            time = TimeIndex(label, s)
            stepped = False  # is this step guarded by this loop's own break or list length?
            step_env: Env = ChainMap({}, env) if isinstance(env, dict) else env.new_child()  # type: ignore[attr-defined]
            if length is not None:
                k = self.emit(Node(self.fresh(f"k{suffix}"), "const", (), s, INT, n.span, time))
                more = Node(self.fresh(f"alive{suffix}"), "prim", (k, length), "lt", BOOL, n.span, time)
                if outer_guard is not None:
                    self.emit(Node(self.fresh(f"more{suffix}"), "prim", (k, length), "lt", BOOL, n.span, time, outer_guard))
                    more = Node(more.name, "prim", (outer_guard, self.out[-1].name), "and", BOOL, n.span, time)
                alive = self.emit(more)
                stepped = True
                lt = self.types.get(items)
                elem_type = (lt.elem or JSON) if getattr(lt, "kind", None) == "list" else JSON  # type: ignore[union-attr]
                elem = Node(self.fresh(f"{lp.label}{suffix}"), "index", (items,), s, elem_type, n.span, time, alive)
                step_env[lp.item] = self.emit(elem)
            if s > 0 and prev_cond is not None:
                before = alive
                if before is None:
                    before = self.emit(
                        Node(self.fresh(f"alive{ctx.suffix}@{lp.label}#0"), "const", (), True, BOOL, n.span, TimeIndex(label, 0))
                    )
                alive = self.emit(
                    Node(self.fresh(f"alive{suffix}"), "guard", (before, prev_cond), None, BOOL, n.span, time)
                )
                stepped = True
            if lp.index is not None:
                step_env[lp.index] = self.emit(Node(self.fresh(lp.index + suffix), "const", (), s, INT, n.span, time))
            for var, _init, ph in lp.carried:
                step_env[ph] = current[var]
            self.block(lp.body, step_env, _Ctx(suffix, alive, time))
            for var, upd in lp.updates:
                value = step_env.get(upd, upd)
                if stepped:
                    typ = self.types.get(current[var]) or self.types.get(value)
                    value = self.emit(
                        Node(self.fresh(f"{var}.sel{suffix}"), "select", (alive, value, current[var]), None, typ, n.span, time)  # type: ignore[arg-type]
                    )
                current[var] = value
            if lp.brk is not None:
                prev_cond = step_env.get(lp.brk, lp.brk)
        for var, res in lp.results:
            env[res] = current[var]


def unroll(program: Program) -> Program:
    if not any(n.op == "loop" for n in program.workflow.nodes):
        return program.with_pass("unroll")
    limit = max_nodes()
    size = unrolled_size(program.workflow.nodes, limit)
    if size > limit:
        raise CompileError(
            f"workflow '{program.workflow.name}' unrolls to about {size:,} nodes, more than the limit of {limit:,} "
            "(set PROMPTC_MAX_NODES to raise it)",
            program.workflow.span,
        )
    u = _Unroller(program)
    for n in program.workflow.nodes:  # types of values defined outside loops, for selects
        u.types[n.name] = n.type
    env: dict[str, str] = {}
    u.block(program.workflow.nodes, env, _Ctx())
    wf = program.workflow
    return program.with_pass("unroll", workflow=evolve(wf, nodes=tuple(u.out), output=env.get(wf.output, wf.output)))
