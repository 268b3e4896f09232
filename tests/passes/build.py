"""Build tiny IR programs by hand, concisely, for the pass tests.

    b = ProgramBuilder()
    b.model("task")
    b.param("instr", trainable=True, text="Be brief.")
    b.function("strip", params=[("s", TEXT)], returns=TEXT)
    b.llm("classify", [("q", TEXT)], TEXT, system="{instr}", user="Q: {q}")
    w = b.workflow("wf", [("q", TEXT)], TEXT)
    q = w.input("q")
    w.ret(w.call("strip", w.llm("classify", q)))
    program = b.build()

Every node gets a distinct span (line = creation order) so tests can check locations.
"""

from __future__ import annotations

from typing import Any

from promptc.errors import Span
from promptc.ir import Demo, Function, LlmDef, Loop, Message, Model, Node, Param, Program, TrainSpec, Workflow
from promptc.types import TEXT, Type

FILE = "t.pflow"


class Body:
    """A node list under construction (the workflow body or a loop body)."""

    def __init__(self, builder: "ProgramBuilder"):
        self.b = builder
        self.nodes: list[Node] = []

    def add(self, op: str, args=(), target: Any = None, name: str | None = None, guard: str | None = None, loop=None) -> str:
        name = name or self.b.fresh(op if op not in ("call", "llm") else str(target))
        self.nodes.append(Node(name, op, tuple(args), target, span=self.b.span(), guard=guard, loop=loop))
        return name

    def input(self, arg: str, name: str | None = None) -> str:
        return self.add("input", (), arg, name=name or arg)

    def const(self, value: Any, name: str | None = None) -> str:
        return self.add("const", (), value, name=name)

    def llm(self, target: str, *args: str, name: str | None = None, guard: str | None = None) -> str:
        return self.add("llm", args, target, name=name, guard=guard)

    def call(self, target: str, *args: str, name: str | None = None, guard: str | None = None) -> str:
        return self.add("call", args, target, name=name, guard=guard)

    def field(self, rec: str, fname: str, name: str | None = None) -> str:
        return self.add("field", (rec,), fname, name=name)

    def index(self, lst: str, i: int, name: str | None = None) -> str:
        return self.add("index", (lst,), i, name=name)

    def list(self, *items: str, name: str | None = None) -> str:
        return self.add("list", items, None, name=name)

    def prim(self, op: str, *args: str, name: str | None = None) -> str:
        return self.add("prim", args, op, name=name)

    def loop(self, label: str, kind: str = "for", bound: int = 2, carried: dict[str, str] | None = None, index: bool = False) -> "LoopBuilder":
        return LoopBuilder(self, label, kind, bound, carried or {}, index)


class LoopBuilder(Body):
    """`lb = w.loop("hop", "max", 3, carried={"q": q})`; `lb.ph("q")`, `lb.i`; body nodes;
    `lb.update("q", x)`; `lb.brk(c)`; `res = lb.end()` -> {var: result name}."""

    def __init__(self, parent: Body, label, kind, bound, carried, index):
        super().__init__(parent.b)
        self.parent = parent
        self.label, self.kind, self.bound = label, kind, bound
        self.carried = tuple((v, init, f"{v}.{label}.ph") for v, init in carried.items())
        self.i = f"{label}.i" if index else None
        self.updates: list[tuple[str, str]] = []
        self.brk_name: str | None = None

    def ph(self, var: str) -> str:
        return next(ph for v, _i, ph in self.carried if v == var)

    def update(self, var: str, value: str) -> None:
        self.updates.append((var, value))

    def brk(self, cond: str) -> None:
        self.brk_name = cond

    def end(self, name: str | None = None) -> dict[str, str]:
        results = tuple((v, f"{v}.after.{self.label}") for v, _i, _p in self.carried)
        lp = Loop(self.label, self.kind, self.bound, self.i, self.carried, tuple(self.nodes), tuple(self.updates), self.brk_name, results)
        self.parent.add("loop", (), self.label, name=name or self.b.fresh("loop_" + self.label), loop=lp)
        return dict(results)


class WorkflowBuilder(Body):
    def __init__(self, builder, name, inputs, returns):
        super().__init__(builder)
        self.name, self.inputs, self.returns = name, tuple(inputs), returns
        self.output: str | None = None

    def ret(self, value: str) -> None:
        self.output = value


class ProgramBuilder:
    def __init__(self, file: str = FILE):
        self.file = file
        self.models: list[Model] = []
        self.params: list[Param] = []
        self.functions: list[Function] = []
        self.llms: list[LlmDef] = []
        self.train: TrainSpec | None = None
        self.wf: WorkflowBuilder | None = None
        self._line = 0
        self._counts: dict[str, int] = {}

    def span(self) -> Span:
        self._line += 1
        return Span(self.file, self._line, 1, self._line, 4)

    def fresh(self, base: str) -> str:
        k = self._counts.get(base, 0) + 1
        self._counts[base] = k
        return f"{base}{k}"

    def model(self, name: str, default: str = "scripted/echo", env: str | None = None) -> None:
        self.models.append(Model(name, default, env, self.span()))

    def param(self, name: str, kind: str = "prompt", trainable: bool = False, text: str = "", role: str = "",
              demos: tuple[Demo, ...] = (), max_demos: int | None = None) -> None:
        self.params.append(Param(name, kind, trainable, role, text, demos, max_demos, self.span()))

    def function(self, name: str, module: str = "std.text", attr: str | None = None,
                 params=(), returns: Type | None = None, doc: str = "") -> None:
        self.functions.append(Function(name, module, attr or name, doc, tuple(params), returns, self.span()))

    def llm(self, name: str, params, returns: Type = TEXT, model: str = "task", system: str | None = None,
            user: str = "", demos: str | None = None, uses: tuple[str, ...] = ()) -> None:
        msgs = []
        if system is not None:
            msgs.append(Message("system", system, self.span()))
        msgs.append(Message("user", user, self.span()))
        self.llms.append(LlmDef(name, tuple(params), returns, model, tuple(msgs), demos, uses, self.span()))

    def workflow(self, name: str = "wf", inputs=(("q", TEXT),), returns: Type = TEXT) -> WorkflowBuilder:
        self.wf = WorkflowBuilder(self, name, inputs, returns)
        return self.wf

    def train_spec(self, metric: str, workflow: str | None = None, **kw) -> None:
        self.train = TrainSpec(workflow or (self.wf.name if self.wf else "wf"), metric, span=self.span(), **kw)

    def build(self) -> Program:
        assert self.wf is not None and self.wf.output is not None, "workflow and its return value first"
        wf = Workflow(self.wf.name, self.wf.inputs, self.wf.returns, tuple(self.wf.nodes), self.wf.output, self.span())
        return Program(self.file, "0" * 64, tuple(self.models), tuple(self.params), tuple(self.functions),
                       tuple(self.llms), wf, self.train)


def trec(file: str = FILE, returns: Type = TEXT) -> Program:
    """input -> llm classify (instruction, answer_format, shots) -> strip -> first_word."""
    b = ProgramBuilder(file)
    b.model("task")
    b.param("instruction", trainable=True, text="Classify the question.", role="what to classify")
    b.param("answer_format", trainable=True, text="Reply with the label only.")
    b.param("shots", kind="demos", trainable=True, max_demos=4)
    b.function("strip", params=[("s", TEXT)], returns=TEXT, doc="Removes whitespace.")
    b.function("first_word", params=[("s", TEXT)], returns=TEXT, doc="Keeps the first word.")
    b.function("exact_match", module="std.metrics")
    b.llm("classify", [("question", TEXT)], TEXT, system="{instruction}\n{answer_format}",
          user="Question: {question}", demos="shots")
    w = b.workflow("trec", [("question", TEXT)], returns)
    q = w.input("question")
    raw = w.llm("classify", q, name="raw")
    s = w.call("strip", raw, name="s")
    w.ret(w.call("first_word", s, name="out"))
    b.train_spec("exact_match")
    return b.build()
