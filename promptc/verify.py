"""The IR verifier: invariants every pass must keep.

`verify(program)` raises `VerifyError` when the IR is malformed. That is a bug in a
frontend or a pass, never a user's mistake (those are `CompileError`s raised earlier,
with a source location), so the message names the node and the broken invariant.

Checked always: known node kinds and operators; SSA (each name defined once, across
loop bodies too; every argument and guard defined before use, loop placeholders inside
their body only); the output is defined; a `loop` node carries a `Loop` and no other
node does. After `resolve`: `llm`/`call` targets exist. After `typecheck`: every node is
typed and every guard is a bool value. After `unroll`: no loop is left. The backward
program references only existing nodes and params. Linear in the program's size.
"""

from __future__ import annotations

from promptc.ir import OPS, PRIMS, Node, Program


class VerifyError(Exception):
    """Malformed IR: an internal compiler error."""


def verify(program: Program) -> None:
    passes = set(program.passes)
    v = _Verifier(program, "resolve" in passes, "typecheck" in passes, "unroll" in passes)
    top = v.block(program.workflow.nodes, [])
    out = program.workflow.output
    if out not in top:
        raise VerifyError(f"workflow output '{out}' is not defined")
    nodes = {n.name for n in program.workflow.nodes}
    params = {p.name for p in program.params}
    for g in program.backward:
        if g.node not in nodes:
            raise VerifyError(f"gradient rule for unknown node '{g.node}'")
        for f in g.feeds:
            if f not in nodes and f not in params:
                raise VerifyError(f"gradient rule of '{g.node}' feeds unknown value '{f}'")


class _Verifier:
    def __init__(self, program: Program, resolved: bool, typed: bool, unrolled: bool):
        self.resolved = resolved
        self.typed = typed
        self.unrolled = unrolled
        self.llms = {l.name for l in program.llms}
        self.functions = {f.name for f in program.functions}
        self.seen: set[str] = set()  # every name defined anywhere: SSA across scopes
        self.types: dict[str, object] = {}

    def define(self, name: str, where: str) -> None:
        if name in self.seen:
            raise VerifyError(f"'{name}' is defined twice ({where})")
        self.seen.add(name)

    def block(self, nodes: tuple[Node, ...], scope: list[set[str]]) -> set[str]:
        local: set[str] = set()
        scope = scope + [local]

        def visible(name: str) -> bool:
            return any(name in s for s in scope)

        for n in nodes:
            self.node(n, visible)
            if n.op == "loop":
                self.loop(n, scope, visible, local)
            self.define(n.name, f"node {n.op}")
            local.add(n.name)
            self.types[n.name] = n.type
        return local

    def node(self, n: Node, visible) -> None:
        if n.op not in OPS:
            raise VerifyError(f"node '{n.name}' has unknown kind '{n.op}'")
        if n.op == "prim" and n.target not in PRIMS:
            raise VerifyError(f"node '{n.name}' has unknown operator '{n.target}'")
        if (n.op == "loop") != (n.loop is not None):
            raise VerifyError(f"node '{n.name}': a Loop record belongs to loop nodes only")
        if n.op == "loop" and self.unrolled:
            raise VerifyError(f"loop '{n.name}' is left after the unroll pass")
        for a in n.args:
            if not visible(a):
                raise VerifyError(f"node '{n.name}' reads '{a}' before it is defined")
        if n.guard is not None:
            if not visible(n.guard):
                raise VerifyError(f"node '{n.name}' is guarded by '{n.guard}' before it is defined")
            if self.typed:
                t = self.types.get(n.guard)
                if t is not None and getattr(t, "kind", None) != "bool":
                    raise VerifyError(f"node '{n.name}' is guarded by '{n.guard}' of type {t}, not bool")
        if self.resolved:
            if n.op == "llm" and n.target not in self.llms:
                raise VerifyError(f"node '{n.name}' calls unknown llm '{n.target}'")
            if n.op == "call" and n.target not in self.functions:
                raise VerifyError(f"node '{n.name}' calls unknown function '{n.target}'")
        if self.typed and n.op != "loop":
            if n.type is None:
                raise VerifyError(f"node '{n.name}' has no type after type checking")
            if n.op == "guard" and n.type.kind != "bool":
                raise VerifyError(f"guard '{n.name}' has type {n.type}, not bool")

    def loop(self, n: Node, scope: list[set[str]], visible, local: set[str]) -> None:
        lp = n.loop
        assert lp is not None
        inner: set[str] = set()
        for _var, init, ph in lp.carried:
            if not visible(init):
                raise VerifyError(f"loop '{n.name}' carries '{init}' before it is defined")
            self.define(ph, f"placeholder of loop '{n.name}'")
            inner.add(ph)
        if lp.index is not None:
            self.define(lp.index, f"index of loop '{n.name}'")
            inner.add(lp.index)
        inner |= self.block(lp.body, scope + [inner])
        for var, upd in lp.updates:
            if upd not in inner and not visible(upd):
                raise VerifyError(f"loop '{n.name}' updates '{var}' from undefined '{upd}'")
        if lp.brk is not None and lp.brk not in inner and not visible(lp.brk):
            raise VerifyError(f"loop '{n.name}' breaks on undefined '{lp.brk}'")
        carried = {v for v, _i, _p in lp.carried}
        for var, res in lp.results:
            if var not in carried:
                raise VerifyError(f"loop '{n.name}' has a result for '{var}', which it does not carry")
            self.define(res, f"result of loop '{n.name}'")
            local.add(res)
