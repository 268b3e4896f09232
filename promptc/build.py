"""The IR builder every stage uses: fresh names, emitting nodes, renaming values.

The frontend lowers into it, and every pass that makes or copies nodes (inline, unroll,
typecheck) goes through it, so a reader meets one idea once:

- `Names`: the set of names taken in one program and the one rule for a fresh one:
  `base` when free, else the first free of `base.1`, `base.2`, ...; temporaries are
  `t1`, `t2`, ... (`temp()`). A fresh name never collides with a name already taken
  (given at construction, `add`ed, or handed out before).
- `Builder`: a node list under construction. `emit(op, hint=..., args=..., ...)` builds a
  `Node` by keyword with a fresh name and appends it; `add(node)` appends a node built
  elsewhere. A loop body is a `child()` builder sharing the names.
- `Env`: the renaming of values while copying nodes (old name -> new name; a name never
  renamed stands for itself). `child()` opens a scope (a loop step, a callee) that sees
  its parent's renamings and whose own ones do not leak out; `copy(node, **changes)` is
  the node with its args and guard renamed, built by keyword (`attrs.evolve`).

`ProgramBuilder` writes whole programs by hand (tests, benchmarks):

    b = ProgramBuilder()
    b.model("task")
    b.param("instr", trainable=True, text="Be brief.")
    b.function("strip", params=[("s", TEXT)], returns=TEXT)
    b.llm("classify", [("q", TEXT)], TEXT, system="{instr}", user="Q: {q}")
    w = b.workflow("wf", [("q", TEXT)], TEXT)
    q = w.input("q")
    w.ret(w.call("strip", w.llm("classify", q)))
    program = b.build()

Every declaration and node it makes gets a distinct span (line = creation order), so
tests can check locations.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Iterable, MutableMapping

from attrs import evolve

from promptc.errors import Span
from promptc.ir import Demo, Function, LlmDef, Loop, Message, Model, Node, Param, Program, TrainSpec, Workflow, walk
from promptc.types import TEXT, Type


class Names:
    """The names taken in one program, and fresh ones that never collide with them."""

    def __init__(self, taken: Iterable[str] = ()):
        self.taken: set[str] = set(taken)
        # base -> the last suffix tried for it: `base`, `base.1`, ... up to it are all taken
        # (names are only ever added), so the next search resumes there, not at `base`:
        # redefining one variable N times costs O(N), with the names of a search from `base`.
        self._tried: dict[str, int] = {}
        self._temps = 0

    @classmethod
    def of(cls, program: Program) -> "Names":
        """Every name `program`'s workflow defines, loop placeholders and results included."""
        names = cls()
        for n in walk(program.workflow.nodes):
            names.add(n.name)
            lp = n.loop
            if lp is not None:
                names.taken.update(ph for _v, _i, ph in lp.carried)
                names.taken.update(r for _v, r in lp.results)
                for extra in (lp.index, lp.item):
                    if extra is not None:
                        names.add(extra)
        return names

    def __contains__(self, name: str) -> bool:
        return name in self.taken

    def add(self, name: str) -> str:
        """Take `name` as it is (a name the source gave)."""
        self.taken.add(name)
        return name

    def fresh(self, base: str) -> str:
        """`base` if free, else the first free `base.1`, `base.2`, ...; now taken."""
        k = self._tried.get(base, 0)
        name = f"{base}.{k}" if k else base
        while name in self.taken:
            k += 1
            name = f"{base}.{k}"
        self._tried[base] = k
        self.taken.add(name)
        return name

    def temp(self, prefix: str = "t") -> str:
        """The next free temporary `t1`, `t2`, ..."""
        while True:
            self._temps += 1
            name = f"{prefix}{self._temps}"
            if name not in self.taken:
                self.taken.add(name)
                return name


class Builder:
    """A node list under construction; names come from a shared `Names`."""

    def __init__(self, names: Names | None = None):
        self.names = names if names is not None else Names()
        self.nodes: list[Node] = []

    def emit(self, op: str, *, hint: str | None = None, name: str | None = None, **fields: Any) -> str:
        """Append `Node(name, op, **fields)`; the name is `name` as given, else fresh from
        `hint`, else a temporary. Returns the node's name."""
        if name is None:
            name = self.names.fresh(hint) if hint else self.names.temp()
        else:
            self.names.add(name)
        self.nodes.append(Node(name=name, op=op, **fields))
        return name

    def add(self, node: Node) -> str:
        """Append a node built elsewhere (its name already taken)."""
        self.nodes.append(node)
        return node.name

    def child(self) -> "Builder":
        """A builder for a loop body: its own nodes, the same names."""
        return Builder(self.names)


class Env:
    """Renamed values while copying nodes: old name -> new name, in nested scopes."""

    __slots__ = ("map",)

    def __init__(self, mapping: MutableMapping[str, str] | None = None):
        self.map: MutableMapping[str, str] = {} if mapping is None else mapping

    def __getitem__(self, name: str) -> str:
        return self.map.get(name, name)

    def __setitem__(self, old: str, new: str) -> None:
        self.map[old] = new

    def __contains__(self, name: str) -> bool:
        return name in self.map

    def opt(self, name: str | None) -> str | None:
        return None if name is None else self.map.get(name, name)

    def all(self, names: Iterable[str]) -> tuple[str, ...]:
        get = self.map.get
        return tuple(get(a, a) for a in names)

    def child(self) -> "Env":
        """A scope that sees these renamings; its own stay inside it."""
        if isinstance(self.map, ChainMap):
            return Env(self.map.new_child())
        return Env(ChainMap({}, self.map))

    def copy(self, node: Node, **changes: Any) -> Node:
        """`node` reading renamed values (args, guard), with `changes` by keyword."""
        args = self.all(node.args)
        guard = self.opt(node.guard)
        if not changes and args == node.args and guard == node.guard:
            return node
        return evolve(node, args=args, guard=guard, **changes)


# -- whole programs by hand ---------------------------------------------------------------


class Body(Builder):
    """A node list under construction with one method per node kind (hand-written IR)."""

    def __init__(self, builder: "ProgramBuilder"):
        super().__init__(builder.names)
        self.b = builder

    def add_node(self, op: str, args=(), target: Any = None, name: str | None = None, guard: str | None = None,
                 loop: Loop | None = None) -> str:
        hint = op if op not in ("call", "llm") else str(target)
        return self.emit(op, hint=None if name else hint, name=name, args=tuple(args), target=target,
                         span=self.b.span(), guard=guard, loop=loop)

    def input(self, arg: str, name: str | None = None) -> str:
        return self.add_node("input", (), arg, name=name or arg)

    def const(self, value: Any, name: str | None = None) -> str:
        return self.add_node("const", (), value, name=name)

    def llm(self, target: str, *args: str, name: str | None = None, guard: str | None = None) -> str:
        return self.add_node("llm", args, target, name=name, guard=guard)

    def call(self, target: str, *args: str, name: str | None = None, guard: str | None = None) -> str:
        return self.add_node("call", args, target, name=name, guard=guard)

    def field(self, rec: str, fname: str, name: str | None = None) -> str:
        return self.add_node("field", (rec,), fname, name=name)

    def index(self, lst: str, i: int, name: str | None = None) -> str:
        return self.add_node("index", (lst,), i, name=name)

    def list(self, *items: str, name: str | None = None) -> str:
        return self.add_node("list", items, None, name=name)

    def prim(self, op: str, *args: str, name: str | None = None) -> str:
        return self.add_node("prim", args, op, name=name)

    def loop(self, label: str, kind: str = "for", bound: int = 2, carried: dict[str, str] | None = None,
             index: bool = False) -> "LoopBuilder":
        return LoopBuilder(self, label, kind, bound, carried or {}, index)


class LoopBuilder(Body):
    """`lb = w.loop("hop", "max", 3, carried={"q": q})`; `lb.ph("q")`, `lb.i`; body nodes;
    `lb.update("q", x)`; `lb.brk(c)`; `res = lb.end()` -> {var: result name}."""

    def __init__(self, parent: Body, label: str, kind: str, bound: int, carried: dict[str, str], index: bool):
        super().__init__(parent.b)
        self.parent = parent
        self.label, self.kind, self.bound = label, kind, bound
        self.carried = tuple((v, init, self.names.add(f"{v}.{label}.ph")) for v, init in carried.items())
        self.i = self.names.add(f"{label}.i") if index else None
        self.updates: list[tuple[str, str]] = []
        self.brk_name: str | None = None

    def ph(self, var: str) -> str:
        return next(ph for v, _i, ph in self.carried if v == var)

    def update(self, var: str, value: str) -> None:
        self.updates.append((var, value))

    def brk(self, cond: str) -> None:
        self.brk_name = cond

    def end(self, name: str | None = None) -> dict[str, str]:
        results = tuple((v, self.names.add(f"{v}.after.{self.label}")) for v, _i, _p in self.carried)
        lp = Loop(label=self.label, kind=self.kind, bound=self.bound, index=self.i, carried=self.carried,
                  body=tuple(self.nodes), updates=tuple(self.updates), brk=self.brk_name, results=results)
        self.parent.emit("loop", name=name or self.names.fresh("loop_" + self.label), target=self.label,
                         span=self.b.span(), loop=lp)
        return dict(results)


class WorkflowBuilder(Body):
    def __init__(self, builder: "ProgramBuilder", name: str, inputs, returns: Type):
        super().__init__(builder)
        self.name, self.inputs, self.returns = name, tuple(inputs), returns
        self.output: str | None = None

    def ret(self, value: str) -> None:
        self.output = value


class ProgramBuilder:
    """Declarations and one workflow, written by hand; `build()` returns the `Program`."""

    def __init__(self, file: str = "t.pflow"):
        self.file = file
        self.names = Names()
        self.models: list[Model] = []
        self.params: list[Param] = []
        self.functions: list[Function] = []
        self.llms: list[LlmDef] = []
        self.train: TrainSpec | None = None
        self.wf: WorkflowBuilder | None = None
        self._line = 0

    def span(self) -> Span:
        self._line += 1
        return Span(self.file, self._line, 1, self._line, 4)

    def model(self, name: str, default: str = "scripted/echo", env: str | None = None) -> None:
        self.models.append(Model(name=name, default=default, env=env, span=self.span()))

    def param(self, name: str, kind: str = "prompt", trainable: bool = False, text: str = "", role: str = "",
              demos: tuple[Demo, ...] = (), max_demos: int | None = None) -> None:
        self.params.append(Param(name=name, kind=kind, trainable=trainable, role=role, text=text, demos=demos,
                                 max_demos=max_demos, span=self.span()))

    def function(self, name: str, module: str = "std.text", attr: str | None = None,
                 params=(), returns: Type | None = None, doc: str = "") -> None:
        self.functions.append(Function(name=name, module=module, attr=attr or name, doc=doc, params=tuple(params),
                                       returns=returns, span=self.span()))

    def llm(self, name: str, params, returns: Type = TEXT, model: str = "task", system: str | None = None,
            user: str = "", demos: str | None = None, uses: tuple[str, ...] = ()) -> None:
        msgs = []
        if system is not None:
            msgs.append(Message("system", system, self.span()))
        msgs.append(Message("user", user, self.span()))
        self.llms.append(LlmDef(name=name, params=tuple(params), returns=returns, model=model, messages=tuple(msgs),
                                demos=demos, uses=uses, span=self.span()))

    def workflow(self, name: str = "wf", inputs=(("q", TEXT),), returns: Type = TEXT) -> WorkflowBuilder:
        self.wf = WorkflowBuilder(self, name, inputs, returns)
        return self.wf

    def train_spec(self, metric: str, workflow: str | None = None, **kw: Any) -> None:
        self.train = TrainSpec(workflow or (self.wf.name if self.wf else "wf"), metric, span=self.span(), **kw)

    def build(self) -> Program:
        if self.wf is None or self.wf.output is None:
            raise ValueError("ProgramBuilder.build: write the workflow and its return value first")
        wf = Workflow(name=self.wf.name, inputs=self.wf.inputs, returns=self.wf.returns, nodes=tuple(self.wf.nodes),
                      output=self.wf.output, span=self.span())
        return Program(file=self.file, source_hash="0" * 64, models=tuple(self.models), params=tuple(self.params),
                       functions=tuple(self.functions), llms=tuple(self.llms), workflow=wf, train=self.train)
