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

The lowering is split by what it lowers: `lower_exprs` (expressions, and the `Scope` of
visible variables), `lower_stmts` (statements: the workflow body, branches, loops) and
this module (declarations, and the entry point); nodes are made with the IR builder of
`promptc.build` (one `Names` for the workflow's values, one for loop labels).

Errors found here (each a `CompileError` at the offending source): unknown or
misused names, duplicate declarations, redefined variables, a `break if` that is not
the last statement of a `loop max` body (or inside a branch), `return` inside a loop or
a branch, unbounded loops and fan-outs (`loop` without `max`, a bound that is not an
integer constant), template placeholders that name neither a param nor
an argument, a `demos` entry that names no demos param, a missing `return`, a second
workflow. Types, arities and imports are the passes' business.
"""

from __future__ import annotations

import gc
import hashlib
from typing import Iterable

from promptc.build import Names
from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc import template as T
from promptc.frontend.limits import check_depth
from promptc.frontend.lower_exprs import _KIND_WORD, _suggest
from promptc.frontend.lower_stmts import StmtLowering
from promptc.ir import Function, LlmDef, Message, Model, Param, Program, Support, TrainSpec
from promptc.types import Type


def lower(module: A.Module) -> Program:
    """Lower a parsed module to IR; errors carry the module's source text."""
    # The lowering allocates many small records that all stay alive: the cyclic GC would
    # only rescan them (as in `parse`, it is paused, and runs again as usual afterwards).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        check_depth(module)  # the lowering recurses on nesting: bound it first
        return _Lowering(module).program()
    except CompileError as e:
        raise e.with_source(module.source)
    finally:
        if gc_was_on:
            gc.enable()


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Lowering(StmtLowering):
    def __init__(self, module: A.Module):
        self.m = module
        self.file = module.file
        self.decls: dict[str, tuple[str, Span]] = {}  # name -> (kind, span)
        self.names = Names()  # every SSA / placeholder name
        self.labels = Names()  # loop labels
        self.index_vars: set[str] = set()
        # the guard of the branch being lowered (None outside `if` branches, and reset at
        # the start of a loop body: the unroll pass adds a loop node's guard to its steps)
        self.guard: str | None = None
        self.assigned_at: dict[str, Span] = {}  # variable -> its latest assignment
        self.llm_defs: dict[str, LlmDef] = {}
        self.variables: dict[str, list[str]] = {}  # workflow variable -> its values (`supports`)

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
        supports: dict[str, Support] = {}
        for e in t.entries:
            if e.key == "supports":
                if e.value in supports:
                    raise CompileError(f"'supports {e.value}' is given twice in the train block", e.value_span or e.span)
                supports[e.value] = self.support(e, wf)
                continue
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
            supports=tuple(supports.values()),
        )

    def support(self, e: A.TrainEntry, wf: A.WorkflowDecl) -> Support:
        """`supports VALUE in FIELD`: VALUE must be a variable the workflow body computes
        (`let` or assigned), not an argument or a declaration; FIELD is a dataset field,
        checked against the training rows when they are read."""
        where = e.value_span or e.span
        if e.value in self.variables:
            return Support(value=e.value, field=e.field or "", nodes=tuple(dict.fromkeys(self.variables[e.value])), span=where)
        if any(a.name == e.value for a in wf.params):
            raise CompileError(
                f"supports: '{e.value}' is an argument of workflow '{wf.name}'; name a value its steps compute"
                " (e.g. what a retrieval returns)",
                where,
            )
        kind = self.decls.get(e.value, (None,))[0]
        if kind is not None:
            raise CompileError(
                f"supports: '{e.value}' is {_KIND_WORD[kind]}; name a variable of workflow '{wf.name}'"
                " (e.g. what a retrieval returns)",
                where,
            )
        raise CompileError(
            f"supports: workflow '{wf.name}' has no variable '{e.value}'{_suggest(e.value, self.variables)}", where
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
