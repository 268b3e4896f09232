"""Lowering statements to IR nodes (part of `promptc.frontend.lower`): the workflow body,
`let` and assignments, `if` branches (guards and `select`s), and loops (one `loop` node
each, with its body, carried variables and results; see `promptc.ir.Loop`).
"""

from __future__ import annotations

from typing import Iterable

from promptc.build import Builder, Names
from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.frontend.lower_exprs import _KIND_WORD, ExprLowering, Scope
from promptc.ir import Loop, Workflow


class StmtLowering(ExprLowering):
    """Statements; the state is set up by `promptc.frontend.lower._Lowering`."""

    labels: Names
    index_vars: set[str]
    assigned_at: dict[str, Span]
    variables: dict[str, list[str]]  # variable -> the values its `let` and assignments gave it

    # -- the workflow --------------------------------------------------------------
    def workflow(self, d: A.WorkflowDecl) -> Workflow:
        inputs = self.args(d.params, f"workflow '{d.name}'")
        scope = Scope()
        nodes = Builder(self.names)
        for a in d.params:
            if a.name in self.decls:
                kind = self.decls[a.name][0]
                raise CompileError(f"argument '{a.name}' shadows {_KIND_WORD[kind]} of the same name", a.span)
            name = nodes.emit("input", hint=a.name, target=a.name, type=a.type, span=a.span)
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
        return Workflow(name=d.name, inputs=inputs, returns=d.returns, nodes=tuple(nodes.nodes), output=output, span=d.span,
                        output_span=output_span)

    def stmt(self, s: A.Stmt, scope: Scope, out: Builder, loop: str | None) -> None:
        if isinstance(s, A.Let):
            self.check_new_variable(s.name, s.name_span, scope)
            value = self.expr(s.value, scope, out, s.name)
            scope.define(s.name, value, s.name_span)
            self.variables.setdefault(s.name, []).append(value)
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
            self.variables.setdefault(s.name, []).append(value)
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

    def check_new_variable(self, name: str, span: Span, scope: Scope) -> None:
        prev = scope.lookup(name)
        if prev is not None:
            raise CompileError(
                f"'{name}' is already defined at line {prev[1].line}; to update it write `{name} = ...`", span
            )
        kind = self.decls.get(name, (None,))[0]
        if kind is not None:
            raise CompileError(f"'{name}' is already declared as {_KIND_WORD[kind]}", span)

    # -- branches ------------------------------------------------------------------
    def if_stmt(self, s: A.If, scope: Scope, out: Builder, loop: str | None) -> None:
        """`if c { A } else { B }` -> A's nodes guarded by c, B's by not c, then one
        `select(c, value after A, value after B)` per variable declared before the `if`
        that either branch assigns (a branch that does not assign it passes the old value).
        The select's span is the assignment that changed the variable (the `if` and its
        condition when both branches assign it): where typecheck reports a merge of two types.

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
        saved_at = self.assigned_at
        branches = []
        for guard, body in ((g_then, s.body), (g_else, s.orelse)):
            self.guard = guard
            self.assigned_at = {}
            mark = len(scope.journal)
            try:
                inner = scope.child()
                for st in body:
                    self.stmt(st, inner, out, loop)
            finally:
                self.guard = outer
            # what the branch changed, undone: the other branch starts from the old values
            branches.append((scope.undo(mark), self.assigned_at))
        (then_vals, then_at), (else_vals, else_at) = branches
        changed = {**else_vals, **then_vals}  # name -> (before, after, declaration order)
        for v in sorted(changed, key=lambda v: changed[v][2]):
            old = changed[v][0]
            a = then_vals[v][1] if v in then_vals else old
            b = else_vals[v][1] if v in else_vals else old
            if a == old and b == old:
                continue
            # the statement a type error of the merge points at: the one assignment that
            # changed the variable, or the `if` itself when both branches assign it
            if v in then_at and v in else_at:
                where = _head(s.span, s.cond.span)
            else:
                where = then_at.get(v) or else_at.get(v) or s.span
            sel = self.emit(out, f"{v}.merge", op="select", args=(cond, a, b), target=v, span=where, guard=outer)
            scope.rebind(v, sel)
            saved_at[v] = where
        self.assigned_at = saved_at

    # -- loops ---------------------------------------------------------------------
    def for_loop(self, s: A.For, scope: Scope, out: Builder) -> None:
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
        self.loop("for", self.labels.fresh(s.var), s.var, s.var_span, s.stop.value, s.body, None, scope, out, s.span)

    def for_each(self, s: A.ForEach, scope: Scope, out: Builder) -> None:
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
        self.loop("each", self.labels.fresh(s.var), s.var, s.var_span, s.bound.value, s.body, None, scope, out, s.span, items)

    def max_loop(self, s: A.LoopMax, scope: Scope, out: Builder) -> None:
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
        self.loop("max", self.labels.fresh("step"), None, None, s.bound.value, body, brk, scope, out, s.span)

    def loop(
        self,
        kind: str,
        label: str,
        index_var: str | None,
        index_span: Span | None,
        bound: int,
        body: tuple[A.Stmt, ...],
        brk: A.BreakIf | None,
        scope: Scope,
        out: Builder,
        span: Span,
        items: str | None = None,
    ) -> None:
        carried_vars = _assigned_outside(body, scope, [brk] if brk else [])
        inner = scope.child()
        index_ph = None
        if index_var is not None:
            index_ph = self.names.fresh(index_var)
            inner.define(index_var, index_ph, index_span or span)
            self.index_vars.add(index_var)
        carried = []
        for v in carried_vars:
            init = scope.lookup(v)
            assert init is not None
            ph = self.names.fresh(v)
            carried.append((v, init[0], ph))
            inner.define(v, ph, init[1])
        nodes = out.child()
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
        results = tuple((v, self.names.fresh(v)) for v in carried_vars)
        # the statements typecheck points at: the last assignment of each carried variable
        update_spans = tuple((v, self.assigned_at[v]) for v in carried_vars if v in self.assigned_at)
        lp = Loop(
            label=label,
            kind=kind,
            bound=bound,
            index=index_ph if items is None else None,
            items=items,
            item=index_ph if items is not None else None,
            carried=tuple(carried),
            body=tuple(nodes.nodes),
            updates=updates,
            brk=brk_value,
            results=results,
            brk_span=brk.span if brk is not None else None,
            update_spans=update_spans,
        )
        out.emit("loop", hint=f"loop.{label}", target=label, span=span, loop=lp, guard=self.guard)
        for v, r in results:
            scope.rebind(v, r)


def _assigned_outside(body: Iterable[A.Stmt], scope: Scope, extra: Iterable = ()) -> list[str]:
    """Variables declared outside `body` and assigned inside it (nested loops included), in order."""
    found: dict[str, None] = {}

    def scan(stmts: Iterable[A.Stmt], local: set[str]) -> None:
        for s in stmts:
            if isinstance(s, A.Let):
                local.add(s.name)
            elif isinstance(s, A.Assign):
                if s.name not in local and scope.lookup(s.name) is not None and s.name not in found:
                    found[s.name] = None
            elif isinstance(s, (A.For, A.ForEach)):
                scan(s.body, local | {s.var})
            elif isinstance(s, A.LoopMax):
                scan(s.body, set(local))
            elif isinstance(s, A.If):
                scan(s.body, set(local))
                scan(s.orelse, set(local))

    scan(body, set())
    return list(found)


def _stmt_span(s: A.Stmt) -> Span:
    return s.span


def _head(span: Span, width: int | Span) -> Span:
    """The first `width` columns of `span`, or its start up to the end of a span inside it."""
    if isinstance(width, Span):
        return Span(span.file, span.line, span.col, width.end_line, width.end_col)
    return Span(span.file, span.line, span.col, span.line, span.col + width)
