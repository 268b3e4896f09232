"""The IR verifier: invariants every pass must keep.

`verify(program)` raises `VerifyError` when the IR is malformed. That is a bug in a
frontend or a pass, never a user's mistake (those are `CompileError`s raised earlier,
with a source location), so the message names the node and the broken invariant.

Checked always: known node kinds and operators; SSA (each name defined once, across
loop bodies too; every argument and guard defined before use, loop placeholders inside
their body only); the output is defined; a `loop` node carries a `Loop` and no other
node does. After `resolve`: `llm`/`call` targets exist. After `typecheck`: every node is
typed and every guard is a bool value. After `unroll`: no loop is left. The backward
program references only existing nodes and params, each gradient node reads as many
values as its op does, and a `grad` node applies the rule of its forward node's kind
(a select's with its condition and two branches, an llm's naming a known llm). Linear in
the program's size.

Checked always, whatever passes a program claims (a `.pfc` can claim any): the *shape* of
every node, from one table keyed by op (`SHAPES`, which covers `OPS`, and `GRAD_SHAPES`,
which covers `GRAD_OPS`): how many arguments it reads, what its `target` is (a name, a
position, a label, data), an operator's own arity, an `llm` node's arity against its
definition, and a constant being plain data (text, numbers, bools, None, lists and maps
with text keys). So a program that verifies is one the interpreter can walk: no node can
make it index past its arguments or hash a list, and a wrong one is refused with one line
naming the node. After `typecheck` too: an `input` names an argument of the workflow and a
`call` passes no more arguments than its function declares.
"""

from __future__ import annotations

from typing import Any, Callable

from attrs import frozen

from promptc.ir import GRAD_OPS, OPS, PRIMS, GradNode, Node, Program


class VerifyError(Exception):
    """Malformed IR: an internal compiler error."""


# -- node shapes: one table keyed by op ----------------------------------------------------

_NONE = type(None)


@frozen
class Shape:
    """What a node of one kind looks like: it reads `least` to `most` arguments (None: any
    number), and its `target` has one of the Python types `target` (`what` says it in an
    error). `check`, when set, is the kind's own rule: `(node, verifier) -> problem or None`."""

    least: int
    most: int | None
    target: tuple[type, ...]
    what: str
    check: Callable[[Any, "_Verifier"], str | None] | None = None


# operator -> how many operands it takes
PRIM_ARITY = {"eq": 2, "ne": 2, "lt": 2, "le": 2, "gt": 2, "ge": 2, "and": 2, "or": 2, "not": 1, "add": 2, "len": 1}
assert set(PRIM_ARITY) == set(PRIMS), "PRIM_ARITY covers every operator"

_DATA = (str, int, float, bool, _NONE, list, tuple, dict)


def _const(n: Node, v: "_Verifier") -> str | None:
    return None if plain_data(n.target) else "holds a constant that is not plain data (text, numbers, bools, lists, maps with text keys)"


def _llm(n: Node, v: "_Verifier") -> str | None:
    want = v.llm_arity.get(n.target)
    if want is not None and len(n.args) != want:
        return f"calls llm '{n.target}' with {len(n.args)} argument(s); it takes {want}"
    return None


def _call(n: Node, v: "_Verifier") -> str | None:
    most = v.function_arity.get(n.target)
    if v.typed and most is not None and len(n.args) > most:
        return f"calls function '{n.target}' with {len(n.args)} argument(s); it takes at most {most}"
    return None


def _input(n: Node, v: "_Verifier") -> str | None:
    if v.typed and n.target not in v.inputs:
        return f"reads '{n.target}', which is not an argument of the workflow"
    return None


def _prim(n: Node, v: "_Verifier") -> str | None:
    want = PRIM_ARITY.get(n.target)
    if want is None:
        return f"has unknown operator '{n.target}'"
    if len(n.args) != want:
        return f"applies '{n.target}' to {len(n.args)} operand(s); it takes {want}"
    return None


LOOP_KINDS = ("for", "max", "each")


def _loop(n: Node, v: "_Verifier") -> str | None:
    lp = n.loop
    if lp is not None and (lp.kind not in LOOP_KINDS or lp.bound < 0):
        return f"is a loop of kind '{lp.kind}' with bound {lp.bound} (kinds: {', '.join(LOOP_KINDS)}; bounds >= 0)"
    return None


SHAPES: dict[str, Shape] = {
    "input": Shape(0, 0, (str,), "the name of a workflow argument", _input),
    "const": Shape(0, 0, _DATA, "plain data", _const),
    "llm": Shape(0, None, (str,), "the name of an llm", _llm),
    "call": Shape(0, None, (str,), "the name of a function", _call),
    "field": Shape(1, 1, (str,), "a field name"),
    "index": Shape(1, 1, (int,), "a position (an integer)"),
    "list": Shape(0, None, (_NONE,), "nothing"),
    "prim": Shape(1, 2, (str,), "an operator", _prim),
    "guard": Shape(2, 2, (_NONE,), "nothing"),
    "select": Shape(3, 3, (_NONE, str), "nothing or a variable's name"),
    "loop": Shape(0, 0, (str,), "the loop's label", _loop),
}
assert set(SHAPES) == set(OPS), "SHAPES covers every op"


def _shape_problem(n: Node, v: "_Verifier") -> str | None:
    """What is wrong with the shape of node `n` (its arity, target, kind's rule), or None."""
    s = SHAPES[n.op]
    k = len(n.args)
    if k < s.least or (s.most is not None and k > s.most):
        want = f"{s.least}" if s.least == s.most else f"{s.least} or more" if s.most is None else f"{s.least} to {s.most}"
        return f"reads {k} argument(s); {n.op} nodes read {want}"
    if type(n.target) not in s.target:
        return f"has a target of type {type(n.target).__name__}; the target of {n.op} nodes is {s.what}"
    return None if s.check is None else s.check(n, v)


def plain_data(value: Any) -> bool:
    """Whether `value` is plain data (what a constant or a demo may hold: text, numbers,
    bools, None, lists and tuples, maps with text keys), walked without recursion."""
    stack = [value]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is list or t is tuple:
            stack.extend(x)
        elif t is dict:
            for k, item in x.items():
                if type(k) is not str:
                    return False
                stack.append(item)
        elif t not in _DATA:
            return False
    return True


# gradient op -> (least, most) arguments; `grad` nodes also follow the rule of their node
GRAD_SHAPES: dict[str, tuple[int, int | None]] = {"loss": (0, 0), "sum": (1, None), "grad": (1, 1)}
assert set(GRAD_SHAPES) == set(GRAD_OPS), "GRAD_SHAPES covers every gradient op"


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
    if not program.backward:
        return
    nodes = {n.name: n.op for n in program.workflow.nodes}
    params = {p.name for p in program.params}
    llms = {l.name for l in program.llms}
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
        least, most = GRAD_SHAPES[g.op]
        if len(g.args) < least or (most is not None and len(g.args) > most):
            want = f"{least}" if most == least else f"{least} or more"
            raise VerifyError(f"gradient node '{g.name}' reads {len(g.args)} value(s); {g.op} nodes read {want}")
        if g.op == "grad":
            _verify_rule(g, nodes, llms)
        defined.add(g.name)


def _verify_rule(g: GradNode, nodes: dict[str, str], llms: set[str]) -> None:
    """A `grad` node applies the rule of its forward node's kind, with what that rule reads."""
    op = nodes[g.node]
    if g.rule != op:
        raise VerifyError(f"gradient node '{g.name}' applies the rule of '{g.rule}' to a {op} node")
    if op == "select" and (len(g.branches) != 2 or g.cond not in nodes or any(b not in nodes for b in g.branches)):
        raise VerifyError(f"gradient node '{g.name}' of a select needs its condition and two branches, forward values")
    if op != "select" and (g.branches or g.cond):
        raise VerifyError(f"gradient node '{g.name}': only the rule of a select has a condition and branches")
    if op == "llm" and g.llm not in llms:
        raise VerifyError(f"gradient node '{g.name}' names unknown llm '{g.llm}'")


class _Verifier:
    """One walk. Names are unique program-wide (checked), so what is visible is one set:
    a loop body's names and placeholders are removed from it when the body ends."""

    def __init__(self, program: Program, resolved: bool, typed: bool, unrolled: bool):
        self.resolved = resolved
        self.typed = typed
        self.unrolled = unrolled
        self.llms = {l.name for l in program.llms}
        self.functions = {f.name for f in program.functions}
        self.llm_arity: dict[str, int] = {}
        for l in program.llms:
            self.llm_arity.setdefault(l.name, len(l.params))
        self.function_arity: dict[str, int] = {}
        for f in program.functions:
            self.function_arity.setdefault(f.name, len(f.params))
        self.inputs = {name for name, _t in program.workflow.inputs}
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
        ops = OPS
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
            problem = _shape_problem(n, self)
            if problem is not None:
                raise VerifyError(f"node '{n.name}' ({op}) {problem}")
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
