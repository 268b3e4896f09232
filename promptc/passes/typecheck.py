"""Pass 2 — type checking: every node gets its `type`, every use is checked.

Rules, one function per node kind (`RULES`):

- input: the workflow argument's declared type; const: from the value (a str is `text`, a
  list the common type of its items, a dict a record, None `json`);
- llm: the `llm`'s declared return type; call: the function's return type (`json` when
  unannotated); both check arity and each argument against the declared parameter type;
- field: a record's field (unknown field: error) or `json` of `json`; index: a list's
  element or `json` of `json`; list: the common type of the elements (`json` if none);
- prim: eq/ne on anything -> bool; len of a list, a text or json -> int; lt/le/gt/ge on two numbers or two texts -> bool;
  and/or/not on bools -> bool; add: text+text -> text, numbers -> int or float,
  list+list -> list;
- guard: bool operands -> bool; select: a bool condition and the common type of the
  branches;
- loop: placeholders typed from the carried initial values (the index is `int`), each
  update must fit its variable, `break if` must be bool, results have the carried type.

`json` is the dynamic type: a `json` value is accepted anywhere (like `Any`), and a
`json` parameter accepts anything. Otherwise compatibility is `promptc.types.assignable`.
The workflow's output must fit its declared return type.
"""

from __future__ import annotations

import gc
import re
from typing import Any, Callable

import attrs
from attrs import evolve

from promptc.bind import FunctionTable
from promptc.errors import CompileError
from promptc.ir import Node, Program
from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, Type, assignable, list_of, scalar_type

TypeEnv = dict[str, Type]


def fits(src: Type, dst: Type) -> bool:
    """`assignable`, with `json` as the dynamic type on either side."""
    if src.kind == "json" or dst.kind == "json":
        return True
    if src.kind == "list" and dst.kind == "list":
        return fits(src.elem or JSON, dst.elem or JSON)
    return assignable(src, dst)


def join(a: Type, b: Type) -> Type | None:
    """The least common type of two types, or None when they have none."""
    if a == b:
        return a
    if a.kind == "json" or b.kind == "json":
        return JSON
    if a.kind == "enum" and b.kind == "enum":
        return Type("enum", labels=tuple(dict.fromkeys(a.labels + b.labels)))
    if {a.kind, b.kind} <= {"text", "enum"}:
        return TEXT
    if {a.kind, b.kind} == {"int", "float"}:
        return FLOAT
    if a.kind == "list" and b.kind == "list":
        e = join(a.elem or JSON, b.elem or JSON)
        return list_of(e) if e is not None else None
    if fits(a, b):
        return b
    if fits(b, a):
        return a
    return None


def join_all(types: list[Type]) -> Type:
    """Common type of list items; `json` when they have none (a heterogeneous list)."""
    if not types:
        return JSON
    t = types[0]
    for u in types[1:]:
        j = join(t, u)
        if j is None:
            return JSON
        t = j
    return t


def const_type(value: Any) -> Type:
    scalar = scalar_type(value)
    if scalar is not None:
        return scalar
    if isinstance(value, (list, tuple)):
        return list_of(join_all([const_type(v) for v in value]))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return Type("record", fields=tuple((k, const_type(v)) for k, v in value.items()))
    return JSON


class _Checker:
    def __init__(self, program: Program, table: FunctionTable):
        self.program = program
        self.inputs = dict(program.workflow.inputs)
        self.llms = {l.name: l for l in program.llms}
        self.functions = {f.name: f for f in program.functions}
        self._table = table
        self.spans: dict[str, Any] = {}  # node name -> its span, for errors about a value
        self._fields: dict[int, tuple[Type, dict[str, Type]]] = {}  # id of a record type -> (it, its fields)

    def field(self, t: Type, name: str) -> Type | None:
        """`t.field(name)`, through a dict per record type (a scan per access is quadratic
        on a record of thousands of fields read thousands of times)."""
        if len(t.fields) <= 8:
            return t.field(name)
        found = self._fields.get(id(t))
        if found is None or found[0] is not t:
            found = self._fields[id(t)] = (t, dict(t.fields))
        return found[1].get(name)

    def table(self) -> FunctionTable:
        """The functions as the compile driver bound them for the resolve pass."""
        return self._table

    # -- the walk -----------------------------------------------------------------
    def nodes(self, nodes: tuple[Node, ...], env: "_Env") -> tuple[Node, ...]:
        out = []
        for n in nodes:
            if n.guard is not None:
                g = env.get(n.guard)
                if g is not None and g.kind != "bool":  # a branch's guard is checked where it is made
                    raise CompileError(f"the condition of an `if` must be bool, got {g}", self.spans.get(n.guard, n.span))
            get = env.get
            arg_types = [get(a) for a in n.args]
            for a, t in zip(n.args, arg_types):
                if t is None:
                    raise CompileError(f"unknown name '{a}'", n.span)
            if n.op == "loop":
                n = self.loop(n, env)
            else:
                rule = RULES.get(n.op)
                if rule is None:
                    raise CompileError(f"unknown node kind '{n.op}'", n.span)
                n = _typed(n, rule(self, n, arg_types))
            env.set(n.name, n.type)
            if n.span is not None:
                self.spans[n.name] = n.span
            out.append(n)
        return tuple(out)

    def loop(self, n: Node, env: "_Env") -> Node:
        lp = n.loop
        assert lp is not None
        body_env = env.child()
        carried_types = {}
        for var, init, ph in lp.carried:
            t = env.get(init)
            if t is None:
                raise CompileError(f"unknown name '{init}'", n.span)
            carried_types[var] = t
            body_env.set(ph, t)
        if lp.index is not None:
            body_env.set(lp.index, INT)
        if lp.item is not None:
            lt = env.get(lp.items) if lp.items is not None else None
            if lt is None or lt.kind not in ("list", "json"):
                raise CompileError(f"`for {lp.label} in LIST max N` needs a list, got {lt}", n.span)
            body_env.set(lp.item, (lt.elem or JSON) if lt.kind == "list" else JSON)
        body = self.nodes(lp.body, body_env)
        assigned = dict(lp.update_spans)  # the statements at fault, as the source says them
        for var, upd in lp.updates:
            t = body_env.get(upd)
            want = carried_types.get(var)
            if t is None or want is None:
                raise CompileError(f"unknown loop variable '{var}'", n.span)
            if not fits(t, want):
                raise CompileError(
                    f"loop variable '{var}' is {want}, but the loop assigns it {t}", assigned.get(var) or _span_of(lp.body, upd, n)
                )
        if lp.brk is not None:
            t = body_env.get(lp.brk)
            if t is None or t.kind != "bool":
                raise CompileError(f"`break if` needs a bool condition, got {t}", lp.brk_span or _span_of(lp.body, lp.brk, n))
        for var, res in lp.results:
            env.set(res, carried_types[var])
        return evolve(n, loop=evolve(lp, body=body))


def _evolve_type(n: Node, t: Type) -> Node:
    return evolve(n, type=t)


def _construct_typed(n: Node, t: Type) -> Node:
    return Node(n.name, n.op, n.args, n.target, t, n.span, n.time, n.guard, n.loop)


# `evolve(n, type=t)` for every node is a third of the pass: the node is built directly
# when `Node` has the fields this knows of (else, through `evolve`).
_typed = (
    _construct_typed
    if tuple(a.name for a in attrs.fields(Node)) == ("name", "op", "args", "target", "type", "span", "time", "guard", "loop")
    else _evolve_type
)


class _Env:
    """Name -> type, with child scopes for loop bodies (no copying of the parent)."""

    def __init__(self, parent: "_Env | None" = None):
        self.parent = parent
        self.types: TypeEnv = {}

    def get(self, name: str) -> Type | None:
        env: _Env | None = self
        while env is not None:
            t = env.types.get(name)
            if t is not None:
                return t
            env = env.parent
        return None

    def set(self, name: str, t: Type | None) -> None:
        if t is not None:
            self.types[name] = t

    def child(self) -> "_Env":
        return _Env(self)


def _span_of(body: tuple[Node, ...], name: str, default: Node):
    for b in body:
        if b.name == name and b.span is not None:
            return b.span
    return default.span


# -- one rule per node kind ------------------------------------------------------------


def _input(c: _Checker, n: Node, args: list[Type]) -> Type:
    t = c.inputs.get(n.target)
    if t is None:
        raise CompileError(f"'{n.target}' is not an argument of workflow '{c.program.workflow.name}'", n.span)
    return t


def _const(c: _Checker, n: Node, args: list[Type]) -> Type:
    return const_type(n.target)


def _check_args(what: str, name: str, params: tuple[tuple[str, Type], ...], args: list[Type], n: Node) -> None:
    for i, ((pname, want), got) in enumerate(zip(params, args), start=1):
        if not fits(got, want):
            raise CompileError(f"argument {i} of '{name}' expects {want}, got {got}", n.span)


def _llm(c: _Checker, n: Node, args: list[Type]) -> Type:
    llm = c.llms.get(n.target)
    if llm is None:
        raise CompileError(f"unknown llm '{n.target}'", n.span)
    if len(args) != len(llm.params):
        raise CompileError(f"llm '{llm.name}' takes {len(llm.params)} argument(s), got {len(args)}", n.span)
    _check_args("llm", llm.name, llm.params, args, n)
    return llm.returns


def _call(c: _Checker, n: Node, args: list[Type]) -> Type:
    fn = c.functions.get(n.target)
    if fn is None:
        raise CompileError(f"unknown function '{n.target}'", n.span)
    if len(args) > len(fn.params) or (len(args) < len(fn.params) and len(args) < _required(c, fn)):
        raise CompileError(f"function '{fn.name}' takes {len(fn.params)} argument(s), got {len(args)}", n.span)
    _check_args("function", fn.name, fn.params, args, n)
    return fn.returns or JSON


def _required(c: _Checker, fn) -> int:
    """How many positional parameters of a bound function have no default: from the
    function table the compile driver bound; all of them when the function is not bound."""
    bound = c.table().get(fn.name)
    return len(fn.params) if bound is None else bound.required


def _field(c: _Checker, n: Node, args: list[Type]) -> Type:
    (t,) = args
    if t.kind == "json":
        return JSON
    if t.kind == "record":
        f = c.field(t, n.target)
        if f is None:
            raise CompileError(f"record {t} has no field '{n.target}'", n.span)
        return f
    raise CompileError(f"cannot take field '{n.target}' of a {t} value", n.span)


def _index(c: _Checker, n: Node, args: list[Type]) -> Type:
    (t,) = args
    if t.kind == "json":
        return JSON
    if t.kind == "list":
        return t.elem or JSON
    raise CompileError(f"cannot index a {t} value", n.span)


def _list(c: _Checker, n: Node, args: list[Type]) -> Type:
    return list_of(join_all(args))


_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "and": "and", "or": "or", "not": "not", "add": "+", "len": "len"}
_NUMBERS = ("int", "float")
_TEXTS = ("text", "enum")


def _prim(c: _Checker, n: Node, args: list[Type]) -> Type:
    op = n.target
    sym = _SYMBOL.get(op, op)
    kinds = [t.kind for t in args]
    want = 1 if op in ("not", "len") else 2
    if op not in _SYMBOL:
        raise CompileError(f"unknown operator '{op}'", n.span)
    if len(args) != want:
        raise CompileError(f"operator '{sym}' takes {want} operand(s), got {len(args)}", n.span)
    dyn = "json" in kinds
    if op == "len":
        if kinds[0] in ("list", "text", "json"):
            return INT
        raise CompileError(f"len() of a {args[0]} value", n.span)
    if op in ("eq", "ne"):
        return BOOL
    if op in ("lt", "le", "gt", "ge"):
        if dyn or all(k in _NUMBERS for k in kinds) or all(k in _TEXTS for k in kinds):
            return BOOL
        raise CompileError(f"operator '{sym}' compares two numbers or two texts, got {args[0]} and {args[1]}", n.span)
    if op in ("and", "or", "not"):
        if _BRANCH_GUARD.search(n.name):
            _check_condition(args[-1], n)
        for t in args:
            if t.kind not in ("bool", "json") and n.name.startswith("if."):  # `if a and b`: the condition
                raise CompileError(f"the condition of an `if` must be bool, got {t}", n.span)
            if t.kind not in ("bool", "json"):
                raise CompileError(f"operator '{sym}' expects bool, got {t}", n.span)
        return BOOL
    # add
    a, b = args
    if dyn:
        return JSON
    if a.kind in _TEXTS and b.kind in _TEXTS:
        return TEXT
    if a.kind in _NUMBERS and b.kind in _NUMBERS:
        return INT if a.kind == b.kind == "int" else FLOAT
    if a.kind == "list" and b.kind == "list":
        j = join(a, b)
        if j is not None:
            return j
    raise CompileError(f"cannot add {a} and {b}", n.span)


def _guard(c: _Checker, n: Node, args: list[Type]) -> Type:
    if len(args) != 2:
        raise CompileError(f"guard takes 2 operands, got {len(args)}", n.span)
    if _BRANCH_GUARD.search(n.name):
        _check_condition(args[-1], n)
    for t in args:
        if t.kind not in ("bool", "json"):
            if n.name.startswith("if."):  # the guard of an `else` branch (lowering names it)
                raise CompileError(f"the condition of an `if` must be bool, got {t}", n.span)
            raise CompileError(f"a guard operand must be bool, got {t}", n.span)
    return BOOL


# The guards the lowering of `if c { A } else { B }` makes from c: `if.else` (not c, or
# g and not c under an enclosing guard g) and `if.then` (g and c), named so (with a
# numeric suffix, and a workflow's prefix once inlined).
_BRANCH_GUARD = re.compile(r"(?:^|\.)if\.(?:then|else)(?:\.\d+)?$")


def _check_condition(t: Type, n: Node) -> None:
    """The condition of an `if` is a bool: `json` is refused too (its truth would be
    Python's, decided at run time), unlike an operand of `and`/`or`/`not`."""
    if t.kind != "bool":
        hint = " (compare it, e.g. `if x == true`)" if t.kind == "json" else ""
        raise CompileError(f"the condition of an `if` must be bool, got {t}{hint}", n.span)


def _select(c: _Checker, n: Node, args: list[Type]) -> Type:
    if len(args) != 3:
        raise CompileError(f"select takes 3 operands, got {len(args)}", n.span)
    cond, a, b = args
    if cond.kind not in ("bool", "json"):
        raise CompileError(f"a select condition must be bool, got {cond}", n.span)
    t = join(a, b)
    if t is None:
        if isinstance(n.target, str):  # a variable merged after an `if`
            raise CompileError(
                f"'{n.target}' is {a} after one branch of the `if` and {b} after the other"
                " (a variable keeps one type)",
                n.span,
            )
        raise CompileError(f"the branches have different types: {a} and {b}", n.span)
    return t


RULES: dict[str, Callable[[_Checker, Node, list[Type]], Type]] = {
    "input": _input,
    "const": _const,
    "llm": _llm,
    "call": _call,
    "field": _field,
    "index": _index,
    "list": _list,
    "prim": _prim,
    "guard": _guard,
    "select": _select,
}


def typecheck(program: Program, functions: FunctionTable) -> Program:
    """`functions`: the program's functions as the compile driver bound them (for arity)."""
    checker = _Checker(program, functions)
    env = _Env()
    # Every typed node stays alive: the cyclic GC would only rescan them, and with a large
    # program in memory that grows faster than the program (paused, as in the parser).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        nodes = checker.nodes(program.workflow.nodes, env)
    finally:
        if gc_was_on:
            gc.enable()
    wf = program.workflow
    out = env.get(wf.output)
    if out is None:
        raise CompileError(f"unknown name '{wf.output}' in return", wf.span)
    if not fits(out, wf.returns):
        span = wf.output_span or next((n.span for n in nodes if n.name == wf.output and n.span is not None), wf.span)
        raise CompileError(f"workflow '{wf.name}' returns {wf.returns}, but the value returned is {out}", span)
    return program.with_pass("typecheck", workflow=evolve(wf, nodes=nodes))
