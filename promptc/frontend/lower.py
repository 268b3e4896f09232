"""AST -> IR: the lowering shared by the `.pflow` parser and the `@workflow` decorator.

`lower(module)` returns a `Program` as the passes expect it *before* they run:

- declarations become `Model`, `Param`, `Function`, `LlmDef` records in source order
  (`LlmDef.uses` and `Function` docs/types are left for the resolve pass);
- the workflow body becomes SSA nodes in topological order. Names are readable and
  unique: `let raw = ...` defines node `raw`, a later `raw = ...` defines `raw.1`, then
  `raw.2`; sub-expressions get temporaries `t1`, `t2`, ...; a `let` of a plain name is
  an alias and defines no node;
- loops become one `loop` node holding a `Loop` (see `promptc.ir`). A variable declared
  before a loop and assigned inside it is *loop-carried*: inside the body it is read
  through a placeholder (a fresh version of its name), its value at the end of an
  iteration is the update, and after the loop it has a fresh SSA name (the result).
  Variables declared inside a body are local to one iteration. The label of a
  `for i in 0..N` loop is `i`; a `loop max N` is labelled `step` (`step.1`, ... when
  there are several); the loop node itself is named `loop.<label>`. A fan-out
  `for x in xs max N` is a loop of kind "each" labelled `x`, reading the list `xs`;
- `if c { A } else { B }` needs no structure in the IR: A's nodes are guarded by `c`
  (named `if.cond` when it is an expression), B's by `if.else = not(c)`; inside another
  branch with guard g, by `if.then = and(g, c)` and `if.else = guard(g, c)`. Every
  variable declared before the `if` and assigned in A or B then gets
  `x.merge = select(c, value after A, value after B)` (target: the variable's name),
  guarded by g. A `let` in a branch is local to it. Inside a loop body nested in a
  branch, nodes are not guarded by the branch: the `loop` node is, and unrolling
  passes its guard on to every step.

Errors found here (each a `CompileError` at the offending source): unknown or
misused names, duplicate declarations, redefined variables, a `break if` that is not
the last statement of a `loop max` body (or inside a branch), `return` inside a loop or
a branch, unbounded loops and fan-outs (`loop` without `max`, a bound that is not an
integer constant), template placeholders that name neither a param nor
an argument, a `demos` entry that names no demos param, a missing `return`, a second
workflow. Types, arities and imports are the passes' business.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Iterable

from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.frontend import template as T
from promptc.frontend.limits import check_depth
from promptc.ir import Function, LlmDef, Loop, Message, Model, Node, Param, Program, TrainSpec, Workflow
from promptc.types import BOOL, FLOAT, INT, TEXT, Type

_KIND_WORD = {"model": "a model", "param": "a param", "function": "a function", "llm": "an llm", "workflow": "the workflow"}


def lower(module: A.Module) -> Program:
    """Lower a parsed module to IR; errors carry the module's source text."""
    try:
        check_depth(module)  # the lowering recurses on nesting: bound it first
        return _Lowering(module).program()
    except CompileError as e:
        raise e.with_source(module.source)


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Scope:
    """Variables visible at one point: a stack of dicts, innermost last."""

    def __init__(self, frames: list[dict[str, tuple[str, Span]]] | None = None):
        self.frames = frames or [{}]

    def lookup(self, name: str) -> tuple[str, Span] | None:
        for f in reversed(self.frames):
            if name in f:
                return f[name]
        return None

    def define(self, name: str, value: str, span: Span) -> None:
        self.frames[-1][name] = (value, span)

    def rebind(self, name: str, value: str) -> None:
        for f in reversed(self.frames):
            if name in f:
                f[name] = (value, f[name][1])
                return
        raise KeyError(name)

    def child(self) -> "_Scope":
        return _Scope(self.frames + [{}])

    def names(self) -> list[str]:
        return [n for f in self.frames for n in f]


class _Lowering:
    def __init__(self, module: A.Module):
        self.m = module
        self.file = module.file
        self.decls: dict[str, tuple[str, Span]] = {}  # name -> (kind, span)
        self.used: set[str] = set()  # every SSA / placeholder name
        self.labels: set[str] = set()
        self.temps = 0
        self.index_vars: set[str] = set()
        # base -> the last suffix tried for it: `base`, `base.1`, ... up to it are all taken
        # (names are only ever added), so the next search resumes there, not at `base`.
        self._next: dict[str, int] = {}
        self._next_label: dict[str, int] = {}
        # the guard of the branch being lowered (None outside `if` branches, and reset at
        # the start of a loop body: the unroll pass adds a loop node's guard to its steps)
        self.guard: str | None = None
        self.assigned_at: dict[str, Span] = {}  # variable -> its latest assignment

    # -- names ---------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """`base` if unused, else the first free `base.1`, `base.2`, ..."""
        return _first_free(base, self.used, self._next)

    def temp(self) -> str:
        while True:
            self.temps += 1
            name = f"t{self.temps}"
            if name not in self.used:
                self.used.add(name)
                return name

    def label(self, base: str) -> str:
        return _first_free(base, self.labels, self._next_label)

    # -- declarations --------------------------------------------------------------
    def declare(self, name: str, kind: str, span: Span) -> None:
        prev = self.decls.get(name)
        if prev is not None:
            pkind, pspan = prev
            if pkind == kind:
                msg = f"duplicate {kind} '{name}' (first declared at line {pspan.line})"
            else:
                msg = f"'{name}' is already declared as {_KIND_WORD[pkind]} at line {pspan.line}"
            raise CompileError(msg, span)
        self.decls[name] = (kind, span)

    def kind_names(self, kind: str) -> list[str]:
        return [n for n, (k, _) in self.decls.items() if k == kind]

    def program(self) -> Program:
        items = self.m.items
        workflow: A.WorkflowDecl | None = None
        trains: list[A.TrainDecl] = []
        for it in items:
            if isinstance(it, A.Use):
                for n in it.names:
                    self.declare(n.local, "function", n.span)
            elif isinstance(it, A.ModelDecl):
                self.declare(it.name, "model", it.name_span or it.span)
            elif isinstance(it, A.ParamDecl):
                self.declare(it.name, "param", it.name_span or it.span)
            elif isinstance(it, A.LlmDecl):
                self.declare(it.name, "llm", it.name_span or it.span)
            elif isinstance(it, A.WorkflowDecl):
                if workflow is not None:
                    raise CompileError(
                        f"only one workflow per file ('{workflow.name}' is declared at line {workflow.span.line})",
                        it.name_span or it.span,
                    )
                workflow = it
                self.declare(it.name, "workflow", it.name_span or it.span)
            elif isinstance(it, A.TrainDecl):
                if trains:
                    raise CompileError(
                        f"only one train block per file (the first is at line {trains[0].span.line})", it.span
                    )
                trains.append(it)
        if workflow is None:
            raise CompileError("no workflow in this file (declare one with `workflow NAME(args) -> type { ... }`)", Span(self.file, 1, 1))

        models = tuple(
            Model(name=it.name, default=it.default, env=it.env, span=it.span, options=it.options) for it in items if isinstance(it, A.ModelDecl)
        )
        params = tuple(
            Param(
                name=it.name,
                kind=it.kind,
                trainable=it.trainable,
                role=it.role,
                text=it.text,
                max_demos=it.max_demos,
                span=it.span,
            )
            for it in items
            if isinstance(it, A.ParamDecl)
        )
        functions = tuple(
            Function(name=n.local, module=it.module, attr=n.attr, span=n.span)
            for it in items
            if isinstance(it, A.Use)
            for n in it.names
        )
        self.params = {p.name: p for p in params}
        llms = tuple(self.llm(it) for it in items if isinstance(it, A.LlmDecl))
        self.llm_defs = {l.name: l for l in llms}
        wf = self.workflow(workflow)
        train = self.train(trains[0], workflow) if trains else None
        return Program(
            file=self.file,
            source_hash=source_hash(self.m.source),
            models=models,
            params=params,
            functions=functions,
            llms=llms,
            workflow=wf,
            train=train,
        )

    def args(self, args: Iterable[A.Arg], what: str) -> tuple[tuple[str, Type], ...]:
        seen: dict[str, A.Arg] = {}
        for a in args:
            if a.name in seen:
                raise CompileError(f"duplicate argument '{a.name}' of {what}", a.span)
            seen[a.name] = a
        return tuple((a.name, a.type) for a in seen.values())

    def llm(self, d: A.LlmDecl) -> LlmDef:
        params = self.args(d.params, f"llm '{d.name}'")
        argnames = {n for n, _ in params}
        kind = self.decls.get(d.model, (None,))[0]
        if kind != "model":
            if kind is None:
                msg = f"unknown model '{d.model}' in llm '{d.name}'{_suggest(d.model, self.kind_names('model'))}"
            else:
                msg = f"'{d.model}' is {_KIND_WORD[kind]}, not a model (llm '{d.name}' needs `via MODEL`)"
            raise CompileError(msg, d.model_span)
        messages: list[Message] = []
        demos: str | None = None
        for e in d.entries:
            if isinstance(e, A.DemosEntry):
                p = self.params.get(e.param)
                if p is None or p.kind != "demos":
                    why = "no param" if p is None else f"a {p.kind} param"
                    raise CompileError(
                        f"`demos {e.param}`: '{e.param}' is {why}; demos entries name a `demos(max = K)` param",
                        e.span,
                    )
                if demos is not None:
                    raise CompileError(f"llm '{d.name}' has two demos entries", e.span)
                demos = e.param
                continue
            for ph in e.placeholders:
                if ph.name in argnames:
                    continue
                p = self.params.get(ph.name)
                if p is None:
                    hint = _suggest(ph.name, [*argnames, *(n for n, q in self.params.items() if q.kind == "prompt")])
                    raise CompileError(
                        f"placeholder '{{{ph.name}}}' in llm '{d.name}' names neither a param nor an argument{hint}",
                        ph.span,
                    )
                if p.kind != "prompt":
                    raise CompileError(
                        f"placeholder '{{{ph.name}}}' names the demos param '{ph.name}'; add `demos {ph.name}` to the llm instead",
                        ph.span,
                    )
            messages.append(Message(role=e.role, template=e.template, span=e.span))
        return LlmDef(
            name=d.name, params=params, returns=d.returns, model=d.model, messages=tuple(messages), demos=demos, span=d.span
        )

    def train(self, t: A.TrainDecl, wf: A.WorkflowDecl) -> TrainSpec:
        if t.workflow != wf.name:
            raise CompileError(f"train block names '{t.workflow}', but the workflow is '{wf.name}'", t.workflow_span)
        values: dict[str, str] = {}
        for e in t.entries:
            if e.key in values:
                raise CompileError(f"'{e.key}' is given twice in the train block", e.span)
            kind = self.decls.get(e.value, (None,))[0]
            if e.key == "metric" and kind == "llm":
                self.check_judge(self.llm_defs[e.value], e)
            elif e.key == "metric" and kind != "function":
                hint = "unknown name" if kind is None else f"'{e.value}' is {_KIND_WORD[kind]}"
                raise CompileError(
                    f"metric must be a function bound by `use` or an llm ({hint}; e.g. `use std.metrics {{ exact_match }}`)"
                    if kind is not None
                    else f"unknown metric '{e.value}' (bind it with `use`, e.g. `use std.metrics {{ exact_match }}`)",
                    e.span,
                )
            if e.key in ("teacher", "backward", "optimizer") and kind != "model":
                what = f"unknown model '{e.value}'" if kind is None else f"'{e.value}' is {_KIND_WORD[kind]}, not a model"
                raise CompileError(f"{e.key}: {what}", e.span)
            values[e.key] = e.value
        if "metric" not in values:
            raise CompileError("the train block needs a metric (e.g. `metric exact_match`)", t.span)
        return TrainSpec(
            workflow=t.workflow,
            metric=values["metric"],
            answer=values.get("answer", "answer"),
            teacher=values.get("teacher"),
            backward=values.get("backward"),
            optimizer=values.get("optimizer"),
            span=t.span,
        )

    def check_judge(self, llm: LlmDef, e: A.TrainEntry) -> None:
        """An llm used as the metric (an LLM judge): `(got, expected)` in, a number or
        `{score: float, feedback: text}` out, and a prompt that is not trained."""
        if len(llm.params) != 2:
            raise CompileError(
                f"the judge llm '{llm.name}' must take 2 arguments (the answer, the expected answer), not {len(llm.params)}",
                e.span,
            )
        ret = llm.returns
        score = ret.field("score") if ret.kind == "record" else None
        if ret.kind not in ("float", "int", "bool") and (score is None or score.kind not in ("float", "int")):
            raise CompileError(
                f"the judge llm '{llm.name}' must return a number or {{score: float, feedback: text}}, not {ret}", e.span
            )
        used = [ph for m in llm.messages for ph in T.placeholders(m.template)] + ([llm.demos] if llm.demos else [])
        for name in used:
            p = self.params.get(name)
            if p is not None and p.trainable:
                raise CompileError(
                    f"the judge llm '{llm.name}' uses the trainable param '{name}': a metric's prompt is not trained",
                    e.span,
                )

    # -- the workflow --------------------------------------------------------------
    def workflow(self, d: A.WorkflowDecl) -> Workflow:
        inputs = self.args(d.params, f"workflow '{d.name}'")
        scope = _Scope()
        nodes: list[Node] = []
        for a in d.params:
            if a.name in self.decls:
                kind = self.decls[a.name][0]
                raise CompileError(f"argument '{a.name}' shadows {_KIND_WORD[kind]} of the same name", a.span)
            name = self.fresh(a.name)
            nodes.append(Node(name=name, op="input", target=a.name, type=a.type, span=a.span))
            scope.define(a.name, name, a.span)
        output: str | None = None
        output_span: Span | None = None
        for i, s in enumerate(d.body):
            if isinstance(s, A.Return):
                if i != len(d.body) - 1:
                    raise CompileError("unreachable statement after `return`", _stmt_span(d.body[i + 1]))
                output = self.expr(s.value, scope, nodes, None)
                output_span = s.span
            else:
                self.stmt(s, scope, nodes, loop=None)
        if output is None:
            raise CompileError(f"workflow '{d.name}' has no `return` at its end", d.name_span or d.span)
        return Workflow(name=d.name, inputs=inputs, returns=d.returns, nodes=tuple(nodes), output=output, span=d.span,
                        output_span=output_span)

    def stmt(self, s: A.Stmt, scope: _Scope, out: list[Node], loop: str | None) -> None:
        if isinstance(s, A.Let):
            self.check_new_variable(s.name, s.name_span, scope)
            value = self.expr(s.value, scope, out, s.name)
            scope.define(s.name, value, s.name_span)
        elif isinstance(s, A.Assign):
            if scope.lookup(s.name) is None:
                kind = self.decls.get(s.name, (None,))[0]
                if kind is not None:
                    raise CompileError(f"cannot assign to '{s.name}': it is {_KIND_WORD[kind]}", s.name_span)
                raise CompileError(
                    f"assignment to undeclared variable '{s.name}' (declare it with `let {s.name} = ...`)", s.name_span
                )
            if s.name in self.index_vars:
                raise CompileError(f"cannot assign to the loop index '{s.name}'", s.name_span)
            value = self.expr(s.value, scope, out, s.name)
            scope.rebind(s.name, value)
            self.assigned_at[s.name] = s.span
        elif isinstance(s, A.Return):
            raise CompileError("`return` is only allowed at the end of the workflow, not inside a loop or a branch", s.span)
        elif isinstance(s, A.BreakIf):
            if loop == "max" and self.guard is not None:
                raise CompileError(
                    "`break if` cannot be inside an `if` branch: it is the last statement of a `loop max` body"
                    " (fold the branch's condition into it: `break if c and d`)",
                    s.span,
                )
            if loop == "max":
                raise CompileError("`break if` must be the last statement of a `loop max` body", s.span)
            raise CompileError("`break if` is only allowed at the end of a `loop max N { ... }` body", s.span)
        elif isinstance(s, A.For):
            self.for_loop(s, scope, out)
        elif isinstance(s, A.LoopMax):
            self.max_loop(s, scope, out)
        elif isinstance(s, A.If):
            self.if_stmt(s, scope, out, loop)
        elif isinstance(s, A.ForEach):
            self.for_each(s, scope, out)
        else:  # pragma: no cover - the AST is a closed set
            raise CompileError(f"unsupported statement {type(s).__name__}", getattr(s, "span", None))

    def check_new_variable(self, name: str, span: Span, scope: _Scope) -> None:
        prev = scope.lookup(name)
        if prev is not None:
            raise CompileError(
                f"'{name}' is already defined at line {prev[1].line}; to update it write `{name} = ...`", span
            )
        kind = self.decls.get(name, (None,))[0]
        if kind is not None:
            raise CompileError(f"'{name}' is already declared as {_KIND_WORD[kind]}", span)

    # -- branches ------------------------------------------------------------------
    def if_stmt(self, s: A.If, scope: _Scope, out: list[Node], loop: str | None) -> None:
        """`if c { A } else { B }` -> A's nodes guarded by c, B's by not c, then one
        `select(c, value after A, value after B)` per variable declared before the `if`
        that either branch assigns (a branch that does not assign it passes the old value).

        Under an enclosing guard g (a branch inside a branch): A is guarded by `and(g, c)`,
        B by `guard(g, c)` (g and not c), and the selects by g."""
        outer = self.guard
        span = s.cond.span  # the guards are the condition's; typecheck names them in errors
        cond = self.expr(s.cond, scope, out, "if.cond")
        if outer is None:
            g_then = cond
            g_else = self.emit(out, "if.else", op="prim", args=(cond,), target="not", span=span, guard=None)
        else:
            g_then = self.emit(out, "if.then", op="prim", args=(outer, cond), target="and", span=span, guard=None)
            g_else = self.emit(out, "if.else", op="guard", args=(outer, cond), span=span, guard=None)
        before = {v: scope.lookup(v)[0] for v in dict.fromkeys(scope.names())}  # type: ignore[index]
        saved_at = self.assigned_at
        branches = []
        for guard, body in ((g_then, s.body), (g_else, s.orelse)):
            self.guard = guard
            self.assigned_at = {}
            try:
                inner = scope.child()
                for st in body:
                    self.stmt(st, inner, out, loop)
            finally:
                self.guard = outer
            after = {v: scope.lookup(v)[0] for v in before}  # type: ignore[index]
            branches.append((after, dict(self.assigned_at)))
            for v, value in before.items():  # the other branch starts from the old values
                scope.rebind(v, value)
        (then_vals, then_at), (else_vals, else_at) = branches
        for v, old in before.items():
            a, b = then_vals[v], else_vals[v]
            if a == old and b == old:
                continue
            where = then_at.get(v) or else_at.get(v) or s.span
            sel = self.emit(out, f"{v}.merge", op="select", args=(cond, a, b), target=v, span=where, guard=outer)
            scope.rebind(v, sel)
            saved_at[v] = where
        self.assigned_at = saved_at

    # -- loops ---------------------------------------------------------------------
    def for_loop(self, s: A.For, scope: _Scope, out: list[Node]) -> None:
        if not (isinstance(s.start, A.Literal) and type(s.start.value) is int and s.start.value == 0):
            raise CompileError("a for loop counts from 0: write `for i in 0..N` with a constant N", s.start.span)
        if not (isinstance(s.stop, A.Literal) and type(s.stop.value) is int):
            raise CompileError(
                "unbounded loop: the bound of `for i in 0..N` must be an integer constant", s.stop.span
            )
        if s.stop.value < 1:
            raise CompileError("a for loop needs a bound of at least 1", s.stop.span)
        for st in s.body:
            if isinstance(st, A.BreakIf):
                raise CompileError("`break if` is only allowed at the end of a `loop max N { ... }` body", st.span)
        self.check_new_variable(s.var, s.var_span, scope)
        self.loop("for", self.label(s.var), s.var, s.var_span, s.stop.value, s.body, None, scope, out, s.span)

    def for_each(self, s: A.ForEach, scope: _Scope, out: list[Node]) -> None:
        if not (isinstance(s.bound, A.Literal) and type(s.bound.value) is int):
            raise CompileError(
                f"unbounded fan-out: the bound of `for {s.var} in LIST max N` must be an integer constant", s.bound.span
            )
        if s.bound.value < 1:
            raise CompileError(f"`for {s.var} in LIST max N` needs N of at least 1", s.bound.span)
        for st in s.body:
            if isinstance(st, A.BreakIf):
                raise CompileError("`break if` is only allowed at the end of a `loop max N { ... }` body", st.span)
        items = self.expr(s.items, scope, out, None)
        self.check_new_variable(s.var, s.var_span, scope)
        self.loop("each", self.label(s.var), s.var, s.var_span, s.bound.value, s.body, None, scope, out, s.span, items)

    def max_loop(self, s: A.LoopMax, scope: _Scope, out: list[Node]) -> None:
        if s.bound is None:
            raise CompileError("unbounded loop: write `loop max N { ... }` with a constant N", _head(s.span, 4))
        if not (isinstance(s.bound, A.Literal) and type(s.bound.value) is int):
            raise CompileError("unbounded loop: the bound of `loop max N` must be an integer constant", s.bound.span)
        if s.bound.value < 1:
            raise CompileError("`loop max N` needs N of at least 1", s.bound.span)
        body = s.body
        brk: A.BreakIf | None = None
        if body and isinstance(body[-1], A.BreakIf):
            brk, body = body[-1], body[:-1]
        for st in body:
            if isinstance(st, A.BreakIf):
                raise CompileError("`break if` must be the last statement of a `loop max` body", st.span)
        self.loop("max", self.label("step"), None, None, s.bound.value, body, brk, scope, out, s.span)

    def loop(
        self,
        kind: str,
        label: str,
        index_var: str | None,
        index_span: Span | None,
        bound: int,
        body: tuple[A.Stmt, ...],
        brk: A.BreakIf | None,
        scope: _Scope,
        out: list[Node],
        span: Span,
        items: str | None = None,
    ) -> None:
        carried_vars = _assigned_outside(body, scope, [brk] if brk else [])
        inner = scope.child()
        index_ph = None
        if index_var is not None:
            index_ph = self.fresh(index_var)
            inner.define(index_var, index_ph, index_span or span)
            self.index_vars.add(index_var)
        carried = []
        for v in carried_vars:
            init = scope.lookup(v)
            assert init is not None
            ph = self.fresh(v)
            carried.append((v, init[0], ph))
            inner.define(v, ph, init[1])
        nodes: list[Node] = []
        guard, self.guard = self.guard, None  # the loop node carries it; unroll adds it to every step
        try:
            for st in body:
                self.stmt(st, inner, nodes, loop=kind)
            brk_value = self.expr(brk.cond, inner, nodes, None) if brk is not None else None
        finally:
            self.guard = guard
            if index_var is not None:
                self.index_vars.discard(index_var)
        updates = tuple((v, inner.lookup(v)[0]) for v in carried_vars)  # type: ignore[index]
        results = tuple((v, self.fresh(v)) for v in carried_vars)
        lp = Loop(
            label=label,
            kind=kind,
            bound=bound,
            index=index_ph if items is None else None,
            items=items,
            item=index_ph if items is not None else None,
            carried=tuple(carried),
            body=tuple(nodes),
            updates=updates,
            brk=brk_value,
            results=results,
        )
        out.append(Node(name=self.fresh(f"loop.{label}"), op="loop", target=label, span=span, loop=lp, guard=self.guard))
        for v, r in results:
            scope.rebind(v, r)

    # -- expressions ---------------------------------------------------------------
    def emit(self, out: list[Node], hint: str | None, **kw) -> str:
        name = self.fresh(hint) if hint else self.temp()
        kw.setdefault("guard", self.guard)
        out.append(Node(name=name, **kw))
        return name

    def expr(self, e: A.Expr, scope: _Scope, out: list[Node], hint: str | None) -> str:
        if isinstance(e, A.Name):
            found = scope.lookup(e.id)
            if found is not None:
                return found[0]
            kind = self.decls.get(e.id, (None,))[0]
            if kind == "param":
                raise CompileError(
                    f"'{e.id}' is a param: params are used inside llm templates as {{{e.id}}}, not as values", e.span
                )
            if kind is not None:
                raise CompileError(f"'{e.id}' is {_KIND_WORD[kind]}, not a value", e.span)
            raise CompileError(f"unknown name '{e.id}'{_suggest(e.id, scope.names())}", e.span)
        if isinstance(e, A.Literal):
            return self.emit(out, hint, op="const", target=e.value, type=_const_type(e.value), span=e.span)
        if isinstance(e, A.ListExpr):
            items = tuple(self.expr(x, scope, out, None) for x in e.items)
            return self.emit(out, hint, op="list", args=items, span=e.span)
        if isinstance(e, A.Call):
            kind = self.decls.get(e.func, (None,))[0]
            if scope.lookup(e.func) is not None:
                raise CompileError(f"'{e.func}' is a variable, not a function or llm", e.func_span)
            if kind in ("param", "model", "workflow"):
                raise CompileError(f"'{e.func}' is {_KIND_WORD[kind]}; only llms and functions can be called", e.func_span)
            args = tuple(self.expr(x, scope, out, None) for x in e.args)
            if kind == "llm":
                want = len(self.llm_defs[e.func].params)
                if len(args) != want:
                    raise CompileError(
                        f"llm '{e.func}' takes {want} argument{'s' if want != 1 else ''}, got {len(args)}", e.span
                    )
                return self.emit(out, hint, op="llm", args=args, target=e.func, span=e.span)
            return self.emit(out, hint, op="call", args=args, target=e.func, span=e.span)
        if isinstance(e, A.Field):
            v = self.expr(e.value, scope, out, None)
            return self.emit(out, hint, op="field", args=(v,), target=e.name, span=e.span)
        if isinstance(e, A.Index):
            if not (isinstance(e.index, A.Literal) and type(e.index.value) is int):
                raise CompileError("a list index must be an integer constant, like x[0] or x[-1]", e.index.span)
            v = self.expr(e.value, scope, out, None)
            return self.emit(out, hint, op="index", args=(v,), target=e.index.value, span=e.span)
        if isinstance(e, A.BinOp):
            left = self.expr(e.left, scope, out, None)
            right = self.expr(e.right, scope, out, None)
            return self.emit(out, hint, op="prim", args=(left, right), target=e.op, span=e.span)
        if isinstance(e, A.Not):
            v = self.expr(e.operand, scope, out, None)
            return self.emit(out, hint, op="prim", args=(v,), target="not", span=e.span)
        raise CompileError(f"unsupported expression {type(e).__name__}", getattr(e, "span", None))  # pragma: no cover


def _first_free(base: str, taken: set[str], tried: dict[str, int]) -> str:
    """The first of `base`, `base.1`, `base.2`, ... not in `taken` (which it joins).

    `tried[base]` remembers where the last search for `base` stopped, so that redefining one
    variable N times costs O(N), not O(N^2); the names are the same as a search from `base`.
    """
    k = tried.get(base, 0)
    name = f"{base}.{k}" if k else base
    while name in taken:
        k += 1
        name = f"{base}.{k}"
    tried[base] = k
    taken.add(name)
    return name


def _assigned_outside(body: Iterable[A.Stmt], scope: _Scope, extra: Iterable = ()) -> list[str]:
    """Variables declared outside `body` and assigned inside it (nested loops included), in order."""
    found: list[str] = []

    def scan(stmts: Iterable[A.Stmt], local: set[str]) -> None:
        for s in stmts:
            if isinstance(s, A.Let):
                local.add(s.name)
            elif isinstance(s, A.Assign):
                if s.name not in local and scope.lookup(s.name) is not None and s.name not in found:
                    found.append(s.name)
            elif isinstance(s, (A.For, A.ForEach)):
                scan(s.body, local | {s.var})
            elif isinstance(s, A.LoopMax):
                scan(s.body, set(local))
            elif isinstance(s, A.If):
                scan(s.body, set(local))
                scan(s.orelse, set(local))

    scan(body, set())
    return found


def _const_type(v) -> Type | None:
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        return INT
    if isinstance(v, float):
        return FLOAT
    if isinstance(v, str):
        return TEXT
    return None


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _stmt_span(s: A.Stmt) -> Span:
    return s.span


def _head(span: Span, width: int) -> Span:
    return Span(span.file, span.line, span.col, span.line, span.col + width)
