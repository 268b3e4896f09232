"""Lowering expressions to IR nodes (part of `promptc.frontend.lower`).

Each sub-expression becomes one node, named after the variable it is assigned to (the
`hint`) or a temporary `t1`, `t2`, ...; a name reads the value a `Scope` maps it to. A
node made inside an `if` branch carries the branch's guard.
"""

from __future__ import annotations

import difflib
import itertools
from typing import Any, Iterable, Iterator

from promptc.build import Builder, Names
from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.ir import LlmDef
from promptc.types import scalar_type

_KIND_WORD = {"model": "a model", "param": "a param", "function": "a function", "llm": "an llm", "workflow": "the workflow"}


class Scope:
    """Variables visible at one point: a stack of frames (name -> (value, span, order)),
    innermost last.

    Every rebinding is written to a journal that a scope shares with its children, so
    that an `if` can list what a branch changed and undo it in time proportional to the
    changes, whatever the number of variables in scope. `order` numbers the definitions:
    it sorts changed variables in the order they were declared.
    """

    def __init__(self, frames: list[dict[str, tuple[str, Span, int]]] | None = None,
                 journal: list[tuple[dict, str, tuple[str, Span, int]]] | None = None,
                 counter: Iterator[int] | None = None):
        self.frames = frames or [{}]
        self.journal = journal if journal is not None else []
        self.counter = counter if counter is not None else itertools.count()

    def lookup(self, name: str) -> tuple[str, Span, int] | None:
        for f in reversed(self.frames):
            if name in f:
                return f[name]
        return None

    def define(self, name: str, value: str, span: Span) -> None:
        self.frames[-1][name] = (value, span, next(self.counter))

    def rebind(self, name: str, value: str) -> None:
        for f in reversed(self.frames):
            if name in f:
                old = f[name]
                self.journal.append((f, name, old))
                f[name] = (value, old[1], old[2])
                return
        raise KeyError(name)

    def child(self) -> "Scope":
        return Scope(self.frames + [{}], self.journal, self.counter)

    def names(self) -> list[str]:
        return [n for f in self.frames for n in f]

    def undo(self, mark: int) -> dict[str, tuple[str, str, tuple[int, int]]]:
        """Undo the rebindings journaled since `mark` (a length of the journal), and return
        the variables of this scope they changed: name -> (value before, value after, sort
        key), in no particular order."""
        mine = {id(f) for f in self.frames}
        journal = self.journal
        changed: dict[str, tuple[str, str, tuple[int, int]]] = {}
        for f, name, old in journal[mark:]:
            if id(f) in mine and name not in changed:
                changed[name] = (old[0], f[name][0], self._declared(name))
        for f, name, old in reversed(journal[mark:]):
            f[name] = old
        del journal[mark:]
        return changed

    def _declared(self, name: str) -> tuple[int, int]:
        """Where `name` first appears, outermost frame first (a loop body's placeholder
        sorts as the variable it stands for)."""
        for i, f in enumerate(self.frames):
            if name in f:
                return i, f[name][2]
        raise KeyError(name)


class ExprLowering:
    """Expressions; the state is set up by `promptc.frontend.lower._Lowering`."""

    decls: dict[str, tuple[str, Span]]
    names: Names
    guard: str | None
    llm_defs: dict[str, LlmDef]

    # -- expressions ---------------------------------------------------------------
    def emit(self, out: Builder, hint: str | None, op: str, **fields: Any) -> str:
        """A node named from `hint` (else a temporary), guarded by the current branch."""
        fields.setdefault("guard", self.guard)
        return out.emit(op, hint=hint, **fields)

    def expr(self, e: A.Expr, scope: Scope, out: Builder, hint: str | None) -> str:
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
            return self.emit(out, hint, op="const", target=e.value, type=scalar_type(e.value), span=e.span)
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



def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
