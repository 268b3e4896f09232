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
nested `loop max 2` fail at once instead of filling memory. The loop steps the pass walks
are held to the same limit (`walked_steps`): a step that emits no node still costs time.
"""

from __future__ import annotations

import os
from typing import Any

from attrs import evolve, frozen

from promptc.build import Builder, Env, Names
from promptc.errors import CompileError
from promptc.ir import Node, Program, TimeIndex
from promptc.types import BOOL, INT, JSON

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


def walked_steps(nodes: tuple[Node, ...], limit: int) -> int:
    """The loop steps unrolling `nodes` walks, the steps of outer loops included; a located
    error over `limit`. A step whose body emits nothing (an alias, or only loops that emit
    nothing) still takes time: thirty nested `loop max 2 { x = x }` unroll to no node at
    all but walk 2**31 steps, and seventeen of them 262,142 steps (about 2 s)."""
    total = 0
    for n in nodes:
        if n.op != "loop" or n.loop is None:
            continue
        lp = n.loop
        inner = walked_steps(lp.body, limit)
        steps = lp.bound * (1 + inner)
        if steps > limit:
            kind = f"for {lp.label} in 0..{lp.bound}" if lp.kind == "for" else f"loop max {lp.bound}"
            raise CompileError(
                f"loop '{lp.label}' (`{kind}`) walks about {steps:,} loop steps ({lp.bound:,} steps, each walking "
                f"{inner:,} steps of the loops inside it), more than the limit of {limit:,} "
                "(set PROMPTC_MAX_NODES to raise it)",
                n.span,
            )
        total += steps
    return total


@frozen
class _Ctx:
    suffix: str = ""
    guard: str | None = None
    time: TimeIndex | None = None


class _Unroller:
    def __init__(self, program: Program):
        self.b = Builder(Names.of(program))
        self.types: dict[str, object] = {}
        self.conj: dict[tuple[str, str], str] = {}  # (outer, own) guard -> their `and` node

    def emit(self, op: str, hint: str, **fields: Any) -> str:
        """A new node named fresh from `hint`."""
        name = self.b.emit(op, hint=hint, **fields)
        self.types[name] = fields.get("type")
        return name

    def add(self, node: Node) -> str:
        """A node of the source program, copied."""
        self.types[node.name] = node.type
        return self.b.add(node)

    # -- straight-line code ----------------------------------------------------------
    def block(self, nodes: tuple[Node, ...], env: Env, ctx: _Ctx) -> None:
        top = ctx.suffix == ""
        for n in nodes:
            if n.op == "loop":
                self.loop(n, env, ctx)
                continue
            if top:  # outside loops: the node itself, reading the loops' results
                self.add(env.copy(n))
            else:
                guard = self.both(env.opt(n.guard), ctx.guard, n, ctx)
                name = self.b.names.fresh(n.name + ctx.suffix)
                self.add(evolve(n, name=name, args=env.all(n.args), guard=guard, time=ctx.time or n.time))
                env[n.name] = name

    def both(self, own: str | None, outer: str | None, n: Node, ctx: _Ctx) -> str | None:
        """The guard of a node under its own guard and its step's guard."""
        if own is None or own == outer:
            return outer
        if outer is None:
            return own
        key = (outer, own)
        if key not in self.conj:
            self.conj[key] = self.emit(
                "prim", f"{own}.alive", args=(outer, own), target="and", type=BOOL, span=n.span, time=ctx.time
            )
        return self.conj[key]

    # -- one loop --------------------------------------------------------------------
    def loop(self, n: Node, env: Env, ctx: _Ctx) -> None:
        lp = n.loop
        assert lp is not None
        outer_guard = self.both(env.opt(n.guard), ctx.guard, n, ctx)
        label = f"{ctx.time}/{lp.label}" if ctx.time is not None else lp.label
        current = {var: env[init] for var, init, _ph in lp.carried}
        alive = outer_guard  # the guard of the current step
        prev_cond: str | None = None
        length = None
        span = n.span
        if lp.items is not None:  # fan-out: how many steps run is the list's length
            items = env[lp.items]
            length = self.emit(
                "prim", f"len{ctx.suffix}@{lp.label}", args=(items,), target="len", type=INT, span=span,
                time=ctx.time, guard=outer_guard,
            )
        for s in range(lp.bound):
            suffix = f"{ctx.suffix}@{lp.label}#{s}"
            time = TimeIndex(label, s)
            stepped = False  # is this step guarded by this loop's own break or list length?
            step_env = env.child()
            if length is not None:
                k = self.emit("const", f"k{suffix}", target=s, type=INT, span=span, time=time)
                if outer_guard is None:
                    alive = self.emit("prim", f"alive{suffix}", args=(k, length), target="lt", type=BOOL, span=span, time=time)
                else:
                    more = self.emit(
                        "prim", f"more{suffix}", args=(k, length), target="lt", type=BOOL, span=span, time=time,
                        guard=outer_guard,
                    )
                    alive = self.emit(
                        "prim", f"alive{suffix}", args=(outer_guard, more), target="and", type=BOOL, span=span, time=time
                    )
                stepped = True
                lt = self.types.get(items)
                elem_type = (lt.elem or JSON) if getattr(lt, "kind", None) == "list" else JSON  # type: ignore[union-attr]
                step_env[lp.item] = self.emit(  # type: ignore[index]
                    "index", f"{lp.label}{suffix}", args=(items,), target=s, type=elem_type, span=span, time=time,
                    guard=alive,
                )
            if s > 0 and prev_cond is not None:
                before = alive
                if before is None:
                    before = self.emit(
                        "const", f"alive{ctx.suffix}@{lp.label}#0", target=True, type=BOOL, span=span,
                        time=TimeIndex(label, 0),
                    )
                alive = self.emit("guard", f"alive{suffix}", args=(before, prev_cond), type=BOOL, span=span, time=time)
                stepped = True
            if lp.index is not None:
                step_env[lp.index] = self.emit("const", lp.index + suffix, target=s, type=INT, span=span, time=time)
            for var, _init, ph in lp.carried:
                step_env[ph] = current[var]
            self.block(lp.body, step_env, _Ctx(suffix, alive, time))
            for var, upd in lp.updates:
                value = step_env[upd]
                if stepped:
                    typ = self.types.get(current[var]) or self.types.get(value)
                    value = self.emit(
                        "select", f"{var}.sel{suffix}", args=(alive, value, current[var]), type=typ, span=span, time=time
                    )
                current[var] = value
            if lp.brk is not None:
                prev_cond = step_env[lp.brk]
        for var, res in lp.results:
            env[res] = current[var]


def unroll(program: Program) -> Program:
    if not any(n.op == "loop" for n in program.workflow.nodes):
        return program.with_pass("unroll")
    limit = max_nodes()
    for measure, what in ((unrolled_size, "unrolls to about {:,} nodes"), (walked_steps, "walks about {:,} loop steps")):
        amount = measure(program.workflow.nodes, limit)
        if amount > limit:
            raise CompileError(
                f"workflow '{program.workflow.name}' {what.format(amount)}, more than the limit of {limit:,} "
                "(set PROMPTC_MAX_NODES to raise it)",
                program.workflow.span,
            )
    u = _Unroller(program)
    for n in program.workflow.nodes:  # types of values defined outside loops, for selects
        u.types[n.name] = n.type
    env = Env()
    u.block(program.workflow.nodes, env, _Ctx())
    wf = program.workflow
    return program.with_pass("unroll", workflow=evolve(wf, nodes=tuple(u.b.nodes), output=env[wf.output]))
