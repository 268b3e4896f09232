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

from promptc.ir import GRAD_OPS, OPS, PRIMS, Node, Program


class VerifyError(Exception):
    """Malformed IR: an internal compiler error."""


def verify(program: Program) -> None:
    passes = set(program.passes)
    v = _Verifier(program, "resolve" in passes, "typecheck" in passes, "unroll" in passes)
    v.block(program.workflow.nodes)
    out = program.workflow.output
    if out not in v.visible:
        raise VerifyError(f"workflow output '{out}' is not defined")
    _verify_backward(program)


def _verify_backward(program: Program) -> None:
    """The backward program: known gradient ops, SSA over its own names (each defined
    once, read after it is defined), and only existing nodes and params referenced."""
    nodes = {n.name for n in program.workflow.nodes}
    params = {p.name for p in program.params}
    defined: set[str] = set()
    for g in program.backward:
        if g.op not in GRAD_OPS:
            raise VerifyError(f"gradient node '{g.name}' has unknown op '{g.op}'")
        if g.name in defined:
            raise VerifyError(f"gradient node '{g.name}' is defined twice")
        if g.node not in nodes:
            raise VerifyError(f"gradient node '{g.name}' for unknown node '{g.node}'")
        for a in g.args:
            if a not in defined:
                raise VerifyError(f"gradient node '{g.name}' reads '{a}' before it is defined")
        for f in g.feeds:
            if f not in nodes and f not in params:
                raise VerifyError(f"gradient node '{g.name}' feeds unknown value '{f}'")
        defined.add(g.name)


class _Verifier:
    """One walk. Names are unique program-wide (checked), so what is visible is one set:
    a loop body's names and placeholders are removed from it when the body ends."""

    def __init__(self, program: Program, resolved: bool, typed: bool, unrolled: bool):
        self.resolved = resolved
        self.typed = typed
        self.unrolled = unrolled
        self.llms = {l.name for l in program.llms}
        self.functions = {f.name for f in program.functions}
        self.seen: set[str] = set()  # every name defined anywhere: SSA across scopes
        self.visible: set[str] = set()
        self.types: dict[str, object] = {}

    def define(self, name: str, where: str) -> None:
        if name in self.seen:
            raise VerifyError(f"'{name}' is defined twice ({where})")
        self.seen.add(name)
        self.visible.add(name)

    def block(self, nodes: tuple[Node, ...]) -> list[str]:
        """Check a node list; returns the names it defined (to close a loop body)."""
        defined: list[str] = []
        visible, seen = self.visible, self.seen
        ops, prims = OPS, PRIMS
        for n in nodes:
            op = n.op
            name = n.name
            if op not in ops:
                raise VerifyError(f"node '{n.name}' has unknown kind '{op}'")
            for a in n.args:
                if a not in visible:
                    raise VerifyError(f"node '{n.name}' reads '{a}' before it is defined")
            if (op == "loop") != (n.loop is not None):
                raise VerifyError(f"node '{n.name}': a Loop record belongs to loop nodes only")
            if op == "prim" and n.target not in prims:
                raise VerifyError(f"node '{n.name}' has unknown operator '{n.target}'")
            if n.guard is not None:
                self.guard(n)
            if self.resolved and op in ("llm", "call"):
                if op == "llm" and n.target not in self.llms:
                    raise VerifyError(f"node '{n.name}' calls unknown llm '{n.target}'")
                if op == "call" and n.target not in self.functions:
                    raise VerifyError(f"node '{n.name}' calls unknown function '{n.target}'")
            if op == "loop":
                if self.unrolled:
                    raise VerifyError(f"loop '{n.name}' is left after the unroll pass")
                defined.extend(self.loop(n))
            elif self.typed:
                if n.type is None:
                    raise VerifyError(f"node '{n.name}' has no type after type checking")
                if op == "guard" and n.type.kind != "bool":
                    raise VerifyError(f"guard '{n.name}' has type {n.type}, not bool")
                self.types[n.name] = n.type
            if name in seen:  # self.define, inlined: this is the hot loop
                raise VerifyError(f"'{name}' is defined twice (node {op})")
            seen.add(name)
            visible.add(name)
            defined.append(name)
        return defined

    def guard(self, n: Node) -> None:
        if n.guard not in self.visible:
            raise VerifyError(f"node '{n.name}' is guarded by '{n.guard}' before it is defined")
        if self.typed:
            t = self.types.get(n.guard)
            if t is not None and getattr(t, "kind", None) != "bool":
                raise VerifyError(f"node '{n.name}' is guarded by '{n.guard}' of type {t}, not bool")

    def loop(self, n: Node) -> list[str]:
        lp = n.loop
        assert lp is not None
        inner: list[str] = []
        for _var, init, ph in lp.carried:
            if init not in self.visible:
                raise VerifyError(f"loop '{n.name}' carries '{init}' before it is defined")
        if (lp.kind == "each") != (lp.items is not None and lp.item is not None):
            raise VerifyError(f"loop '{n.name}': a list and an element placeholder belong to `each` loops only")
        if lp.items is not None and lp.items not in self.visible:
            raise VerifyError(f"loop '{n.name}' iterates over '{lp.items}' before it is defined")
        for _var, _init, ph in lp.carried:
            self.define(ph, f"placeholder of loop '{n.name}'")
            inner.append(ph)
        if lp.index is not None:
            self.define(lp.index, f"index of loop '{n.name}'")
            inner.append(lp.index)
        if lp.item is not None:
            self.define(lp.item, f"element of loop '{n.name}'")
            inner.append(lp.item)
        inner.extend(self.block(lp.body))
        for var, upd in lp.updates:
            if upd not in self.visible:
                raise VerifyError(f"loop '{n.name}' updates '{var}' from undefined '{upd}'")
        if lp.brk is not None and lp.brk not in self.visible:
            raise VerifyError(f"loop '{n.name}' breaks on undefined '{lp.brk}'")
        self.visible.difference_update(inner)  # the body's names end with the body
        carried = {v for v, _i, _p in lp.carried}
        results = []
        for var, res in lp.results:
            if var not in carried:
                raise VerifyError(f"loop '{n.name}' has a result for '{var}', which it does not carry")
            self.define(res, f"result of loop '{n.name}'")
            results.append(res)
        return results
