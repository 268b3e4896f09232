"""Pass 1 — name resolution and imports.

Checks that every name a program uses means something, and binds what `use` imports:

- the program's functions, bound by the compile driver (`functions`: a
  `promptc.bind.FunctionTable`; the pass imports nothing): each `Function` gets its
  docstring, parameter types and return type from the table;
- each `call` node names a bound function, each `llm` node an `llm` definition, and every
  value a node reads is defined before it (loop placeholders inside their own body);
- each `LlmDef` names an existing model; every `{placeholder}` of its templates is one of
  its arguments or a `prompt` param (`{{` and `}}` are literal braces); `demos` names a
  `demos` param; `LlmDef.uses` is filled with the params the templates use, in first-use
  order, the demos param placed where the demos are rendered (before the last user
  message);
- the `train` block names the workflow, a bound metric function and existing models;
- no model string is read from a variable named like a secret (promptc.secrets).

A wrong name is a `CompileError` at the offending node or declaration.
"""

from __future__ import annotations

from typing import Iterable

from attrs import evolve

from promptc import template as T
from promptc.bind import FunctionTable
from promptc.errors import CompileError, Span
from promptc.ir import Function, LlmDef, Node, Program
from promptc.secrets import refuse_secret_model


def resolve(program: Program, functions: FunctionTable) -> Program:
    kinds = _declared_kinds(program)
    for m in program.models:
        refused = refuse_secret_model(m.name, m.env)
        if refused:
            raise CompileError(refused, m.span)
    bound = tuple(_bind(fn, functions) for fn in program.functions)
    llms = tuple(_resolve_llm(llm, program) for llm in program.llms)
    _check_nodes(program.workflow.nodes, [], kinds, program)
    _check_output(program)
    _check_train(program, {f.name for f in bound})
    return program.with_pass("resolve", functions=bound, llms=llms)


# -- declarations --------------------------------------------------------------------


def _declared_kinds(program: Program) -> dict[str, str]:
    """Name -> what it is ("model", "param", "function", "llm"); duplicates are errors."""
    kinds: dict[str, str] = {}
    groups = (
        ("model", program.models),
        ("param", program.params),
        ("function", program.functions),
        ("llm", program.llms),
    )
    for kind, items in groups:
        for it in items:
            if it.name in kinds:
                other = kinds[it.name]
                what = f"duplicate {kind} '{it.name}'" if other == kind else f"'{it.name}' is already a {other}"
                raise CompileError(what, it.span)
            kinds[it.name] = kind
    return kinds


def _bind(fn: Function, table: FunctionTable) -> Function:
    bound = table.get(fn.name)
    if bound is None:
        raise CompileError(table.errors[fn.name], fn.span)
    return evolve(fn, doc=bound.doc, params=bound.params, returns=bound.returns)


def placeholders(template: str, span: Span | None = None) -> list[str]:
    """The `{name}` fields of a template, in order (`{{`/`}}` are literal braces)."""
    try:
        return [name for name, _, _ in T.scan(template)]
    except T.TemplateError as e:
        raise CompileError(f"bad template: {e.message}", span) from None


def _resolve_llm(llm: LlmDef, program: Program) -> LlmDef:
    if not any(m.name == llm.model for m in program.models):
        raise CompileError(f"unknown model '{llm.model}' in llm '{llm.name}'", llm.span)
    args = {name for name, _ in llm.params}
    params = program.template_params(llm)  # by the name the templates use
    uses: dict[str, None] = {}
    if llm.demos is not None:
        d = next((p for p in program.params if p.name == llm.demos), None)
        if d is None:
            raise CompileError(f"unknown demos param '{llm.demos}' in llm '{llm.name}'", llm.span)
        if d.kind != "demos":
            raise CompileError(f"'{llm.demos}' is a {d.kind} param, not a demos param", llm.span)
    last_user = max((i for i, m in enumerate(llm.messages) if m.role == "user"), default=len(llm.messages))
    for i, msg in enumerate(llm.messages):
        if i == last_user and llm.demos is not None:
            uses[llm.demos] = None
        for name in placeholders(msg.template, msg.span or llm.span):
            where = msg.span or llm.span
            if name in args:
                if name in params:
                    raise CompileError(
                        f"placeholder '{{{name}}}' is both an argument of '{llm.name}' and a param", where
                    )
                continue
            p = params.get(name)
            if p is None:
                raise CompileError(
                    f"placeholder '{{{name}}}' in llm '{llm.name}' is neither an argument nor a param", where
                )
            if p.kind != "prompt":
                raise CompileError(
                    f"placeholder '{{{name}}}' names the demos param '{name}'; use `demos {name}` instead", where
                )
            uses.setdefault(p.name, None)
    if llm.demos is not None:
        uses.setdefault(llm.demos, None)
    return evolve(llm, uses=tuple(uses))


# -- the workflow --------------------------------------------------------------------


def _check_nodes(nodes: Iterable[Node], scope: list[set[str]], kinds: dict[str, str], program: Program) -> set[str]:
    """Every node's target exists and it reads only values defined before it.

    `scope` is a stack of name sets (the workflow, then each enclosing loop body with
    its placeholders): lookups cost the nesting depth, never a copy of what is visible.
    """
    local: set[str] = set()
    scope = scope + [local]

    def visible(name: str) -> bool:
        return any(name in s for s in scope)

    for n in nodes:
        for a in n.args:
            if not visible(a):
                raise CompileError(f"unknown name '{a}'", n.span)
        if n.guard is not None and not visible(n.guard):
            raise CompileError(f"unknown name '{n.guard}'", n.span)
        if n.op == "call":
            what = kinds.get(n.target)
            if what != "function":
                if what is None:
                    raise CompileError(f"unknown function '{n.target}'", n.span)
                raise CompileError(f"'{n.target}' is a{'n' if what == 'llm' else ''} {what}, not a function", n.span)
        elif n.op == "llm":
            what = kinds.get(n.target)
            if what != "llm":
                if what is None:
                    raise CompileError(f"unknown llm '{n.target}'", n.span)
                raise CompileError(f"'{n.target}' is a {what}, not an llm", n.span)
        elif n.op == "loop" and n.loop is not None:
            lp = n.loop
            for _var, init, _ph in lp.carried:
                if not visible(init):
                    raise CompileError(f"unknown name '{init}'", n.span)
            inner = {ph for _v, _i, ph in lp.carried}
            if lp.index is not None:
                inner.add(lp.index)
            if lp.items is not None and not visible(lp.items):
                raise CompileError(f"unknown name '{lp.items}'", n.span)
            if lp.item is not None:
                inner.add(lp.item)
            body_scope = scope + [inner]
            inner.update(_check_nodes(lp.body, body_scope, kinds, program))
            for var, upd in lp.updates:
                if upd not in inner and not visible(upd):
                    raise CompileError(f"unknown name '{upd}' (update of '{var}')", n.span)
            if lp.brk is not None and lp.brk not in inner and not visible(lp.brk):
                raise CompileError(f"unknown name '{lp.brk}' in `break if`", n.span)
            local.update(res for _v, res in lp.results)
        local.add(n.name)
    return local


def _check_output(program: Program) -> None:
    wf = program.workflow
    names = {n.name for n in wf.nodes}
    for n in wf.nodes:
        if n.loop is not None:
            names.update(r for _v, r in n.loop.results)
    if wf.output not in names:
        raise CompileError(f"unknown name '{wf.output}' in return", wf.span)


def _check_train(program: Program, functions: set[str]) -> None:
    t = program.train
    if t is None:
        return
    if t.workflow != program.workflow.name:
        raise CompileError(
            f"train block names workflow '{t.workflow}', but the workflow is '{program.workflow.name}'", t.span
        )
    if t.metric not in functions and not any(l.name == t.metric for l in program.llms):
        raise CompileError(f"unknown metric function '{t.metric}' (bind it with `use`)", t.span)
    models = {m.name for m in program.models}
    for role in ("teacher", "backward", "optimizer"):
        m = getattr(t, role)
        if m is not None and m not in models:
            raise CompileError(f"unknown {role} model '{m}'", t.span)
