"""A decorated workflow's module, read: its declarations and its globals as a promptc AST.

`@promptc.workflow` (the user-facing API, `promptc.decorator`) records what the user
declares (`promptc.model`, `prompt`, `demos`, `use`, `llm`, `train`) as the `*Ref`
objects of this module, and wraps the workflow function in a `DecoratedFunction`.
`module_ast` turns the function and the declarations held by its module's globals into
the *same* AST the `.pflow` parser gives, so the shared lowering gives identical IR.

Modules: this one (the declarations and the assembly of a module's globals into an AST),
`py_source` (the function's source and its spans), `py_body` (the walk of the body).
Like Triton's `@jit`, the decorator reads the function's source with `ast` and lowers a
small Python subset to the *same* AST as the `.pflow` parser, so the shared lowering
gives identical IR. The body is checked when the decorator runs (an unsupported
construct is a `CompileError` at the user's own file, line and column); the program is
built on first use of `.program`, from the declarations in the function's module
globals at that time (so they may be defined after the workflow). Declarations take the
name of the global variable that holds them, and appear in the program in the order of
the module's globals, like the declarations of a `.pflow` file.

The subset (see docs/language.md for the mapping):

- `x = e` declares `x` the first time (`let x = e`) and updates it after (`x = e`);
  `x += e` is `x = x + e`;
- `for i in range(N):` is `for i in 0..N` (N an int literal or a module-level int);
- `for _ in range(N):` whose body ends with `if COND: break` is `loop max N { ...;
  break if COND }` (its index is not available);
- `for x in xs[:N]:` (N an int literal or a module-level int) is the fan-out
  `for x in xs max N`;
- `if COND: ... elif COND: ... else: ...` is `if COND { } else if COND { } else { }`; a
  variable first assigned inside a branch is local to it (as a `let` in the branch);
- `return e` as the last statement;
- a call of another `@promptc.workflow` function (imported, or bound with
  `promptc.use("other.py", "name")` / `promptc.use("x.pflow", "name")`) is composition:
  it becomes `use "<its file>" { name }` and the inline pass copies it in;
- expressions: names, str/int/float/bool literals, calls of llms and functions with
  positional arguments, `x.f`, `x[0]`, `[a, b]`, `+`, one comparison `== != < <= > >=`,
  `and`, `or`, `not`.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Any, Callable

from promptc.bind import load_callable, python_type, search_path, type_hints
from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc import template as T
from promptc.types import JSON
from promptc.frontend.py_body import _BodyLowering
from promptc.frontend.py_source import _def_span, _Source

__all__ = [
    "DecoratedFunction", "DemosRef", "FunctionRef", "LlmRef", "ModelRef", "PromptRef", "TrainRef", "caller_span", "module_ast",
]


# ---- declarations -------------------------------------------------------------------------


def caller_span(depth: int = 2) -> Span | None:
    try:
        f = sys._getframe(depth)
    except ValueError:  # pragma: no cover
        return None
    return Span(f.f_code.co_filename, f.f_lineno, 1)


class _Decl:
    """A declaration object; its name is the module global that holds it."""

    span: Span | None = None


class ModelRef(_Decl):
    def __init__(self, env: str | None, default: str, span: Span | None, options: tuple[tuple[str, Any], ...] = ()):
        self.env, self.default, self.span, self.options = env, default, span, options

    def __repr__(self) -> str:
        return f"promptc.model({self.env!r}, default={self.default!r})"


class PromptRef(_Decl):
    def __init__(self, text: str, trainable: bool, role: str, span: Span | None):
        self.text, self.trainable, self.role, self.span = text, trainable, role, span

    def __repr__(self) -> str:
        return f"promptc.prompt({self.text!r}, trainable={self.trainable})"


class DemosRef(_Decl):
    def __init__(self, max_demos: int, trainable: bool, role: str, span: Span | None):
        self.max_demos, self.trainable, self.role, self.span = max_demos, trainable, role, span

    def __repr__(self) -> str:
        return f"promptc.demos(max={self.max_demos}, trainable={self.trainable})"


class FunctionRef(_Decl):
    """A Python callable bound as a functional node (`use MODULE { attr }`)."""

    def __init__(self, module: str, attr: str, span: Span | None):
        self.module, self.attr, self.span = module, attr, span

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return load_callable(self.module, self.attr, search_path(self.span.file if self.span else ""))(*args, **kwargs)

    def __repr__(self) -> str:
        return f"promptc.use({self.module!r}, {self.attr!r})"


class TrainRef:
    def __init__(self, metric: FunctionRef, answer: str, teacher, backward, optimizer, span: Span | None,
                 supports: tuple[tuple[str, str], ...] = ()):
        self.metric, self.answer, self.span = metric, answer, span
        self.teacher, self.backward, self.optimizer = teacher, backward, optimizer
        self.supports = supports  # (variable, dataset field) pairs


class LlmRef(_Decl):
    """An `@promptc.llm` function: its signature gives the arguments and the output type."""

    def __init__(self, fn: Callable, via: ModelRef, entries: list[tuple[str, Any]]):
        functools.update_wrapper(self, fn)
        self.fn, self.via, self.entries = fn, via, entries
        self.span = _def_span(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"llm '{self.fn.__name__}' can only be called inside a @promptc.workflow function")

    def __repr__(self) -> str:
        return f"<promptc.llm {self.fn.__name__}>"


# ---- the decorated workflow ---------------------------------------------------------------


class DecoratedFunction:
    """A decorated workflow function, read: its source, its lowered body, its train block.

    `promptc.decorator.WorkflowFunction` (what `@promptc.workflow` returns) adds compiling
    and calling; the compile driver recognises a `use`d decorated workflow by this class.
    """

    def __init__(self, fn: Callable, train_ref: TrainRef | None):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.train = train_ref
        self._src = _Source.of(fn)
        try:
            self._body = _BodyLowering(self._src, fn).workflow()
        except RecursionError:  # Python code nested deeper than the lowering walks
            raise CompileError(
                f"workflow '{fn.__name__}' is nested too deeply to compile (split long expressions into assignments)",
                Span(self._src.file, self._src.first_line, 1),
                self._src.text,
            ) from None

    @property
    def file(self) -> str:
        return self._src.file

    def module_ast(self) -> A.Module:
        """The AST of the workflow and the declarations of its module, as the parser would give it."""
        return module_ast(self)


# ---- module globals -> declarations -------------------------------------------------------


def module_ast(wf: DecoratedFunction) -> A.Module:
    src = wf._src
    g = wf.fn.__globals__
    names: dict[int, str] = {}
    for name, obj in list(g.items()):
        if isinstance(obj, _Decl) and id(obj) not in names:
            names[id(obj)] = name

    def name_of(obj: Any, what: str, span: Span | None) -> str:
        n = names.get(id(obj))
        if n is None:
            raise CompileError(f"the {what} must be held by a module-level variable of '{os.path.basename(src.file)}'", span)
        return n

    items: list[A.Decl] = []
    fallback = Span(src.file, src.first_line, 1)
    for name, obj in list(g.items()):
        if names.get(id(obj)) != name:
            continue
        span = obj.span or fallback
        if isinstance(obj, ModelRef):
            items.append(
                A.ModelDecl(name=name, default=obj.default, env=obj.env, span=span, name_span=span, options=obj.options)
            )
        elif isinstance(obj, PromptRef):
            items.append(
                A.ParamDecl(name, "prompt", obj.trainable, obj.role, obj.text, None, span=span, name_span=span)
            )
        elif isinstance(obj, DemosRef):
            items.append(A.ParamDecl(name, "demos", obj.trainable, obj.role, "", obj.max_demos, span=span, name_span=span))
        elif isinstance(obj, FunctionRef):
            items.append(A.Use(module=obj.module, names=(A.ImportName(obj.attr, name if name != obj.attr else None, span),), span=span))
        elif isinstance(obj, LlmRef):
            items.append(_llm_ast(obj, name, name_of))
    # plain Python functions of the workflow's own file that it calls: `use "<this file>" { f }`;
    # other decorated workflows it calls (imported or not): `use "<their file>" { f }`,
    # which the inline pass expands
    body_calls = _calls(wf._body[2])
    for callee in dict.fromkeys(body_calls):
        obj = g.get(callee)
        if isinstance(obj, DecoratedFunction) and obj is not wf:
            span = _def_span(obj.fn) or fallback
            module = os.path.relpath(obj.file, os.path.dirname(src.file) or ".")
            alias = callee if callee != obj.fn.__name__ else None
            items.append(A.Use(module=module, names=(A.ImportName(obj.fn.__name__, alias, span),), span=span))
            continue
        if inspect.isfunction(obj) and not isinstance(obj, _Decl) and obj.__module__ == wf.fn.__module__:
            span = _def_span(obj) or fallback
            items.append(A.Use(module=os.path.basename(src.file), names=(A.ImportName(callee, None, span),), span=span))
    args, returns, body, span, name_span = wf._body
    items.append(A.WorkflowDecl(wf.fn.__name__, args, returns, body, span=span, name_span=name_span))
    if wf.train is not None:
        t = wf.train
        tspan = t.span or span
        entries = [A.TrainEntry("metric", name_of(t.metric, "train metric", tspan), tspan)]
        entries.append(A.TrainEntry("answer", t.answer, tspan))
        for key in ("teacher", "backward", "optimizer"):
            m = getattr(t, key)
            if m is not None:
                entries.append(A.TrainEntry(key, name_of(m, f"{key} model", tspan), tspan))
        for value, fld in t.supports:
            entries.append(A.TrainEntry("supports", value, tspan, field=fld, value_span=tspan, field_span=tspan))
        items.append(A.TrainDecl(wf.fn.__name__, tuple(entries), tspan, tspan))
    return A.Module(items=tuple(items), file=src.file, source=src.text)


def _calls(stmts) -> list[str]:
    out: list[str] = []

    def ex(e):
        if isinstance(e, A.Call):
            out.append(e.func)
            for a in e.args:
                ex(a)
        elif isinstance(e, (A.Field, A.Not)):
            ex(e.value if isinstance(e, A.Field) else e.operand)
        elif isinstance(e, A.Index):
            ex(e.value)
        elif isinstance(e, A.BinOp):
            ex(e.left)
            ex(e.right)
        elif isinstance(e, A.ListExpr):
            for x in e.items:
                ex(x)

    def st(s):
        if isinstance(s, (A.Let, A.Assign, A.Return)):
            ex(s.value)
        elif isinstance(s, A.BreakIf):
            ex(s.cond)
        elif isinstance(s, (A.For, A.LoopMax)):
            for b in s.body:
                st(b)
        elif isinstance(s, A.ForEach):
            ex(s.items)
            for b in s.body:
                st(b)
        elif isinstance(s, A.If):
            ex(s.cond)
            for b in s.body + s.orelse:
                st(b)

    for s in stmts:
        st(s)
    return out


def _llm_ast(ref: LlmRef, name: str, name_of) -> A.LlmDecl:
    fn = ref.fn
    span = ref.span or Span("<unknown>", 1, 1)
    hints = type_hints(fn)
    sig = inspect.signature(fn)
    params = tuple(
        A.Arg(n, python_type(hints.get(n)), span)
        for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    returns = python_type(hints.get("return")) if "return" in hints else JSON
    entries: list[A.Message | A.DemosEntry] = []
    for role, value in ref.entries:
        if role == "demos":
            entries.append(A.DemosEntry(name_of(value, f"demos param of llm '{name}'", span), span))
            continue
        try:
            found = T.scan(value)
        except T.TemplateError as e:
            raise CompileError(f"bad template in llm '{name}': {e.message}", span) from None
        holes = tuple(A.Placeholder(n, span) for n, _, _ in found)
        entries.append(A.Message(role=role, template=value, placeholders=holes, span=span))
    model_name = name_of(ref.via, f"model of llm '{name}'", span)
    return A.LlmDecl(name, params, returns, model_name, span, tuple(entries), span=span, name_span=span)
