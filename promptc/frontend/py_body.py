"""The walk of a decorated workflow's Python body: the supported subset of Python
statements and expressions (see `promptc.frontend.decorator`) -> the promptc AST the
`.pflow` parser gives; anything else is a `CompileError` at the user's line."""

from __future__ import annotations

import ast
from typing import Callable

from promptc.bind import python_type, type_hints
from promptc.errors import Span
from promptc.frontend import ast as A
from promptc.types import JSON, Type
from promptc.frontend.py_source import A_join, _Source


_CMP = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_SUPPORTED = "assignments, `for _ in range(N)`, `for x in xs[:N]`, `if`/`elif`/`else`, and `return`"


class _BodyLowering:
    """Python `ast` of the workflow function -> `promptc.frontend.ast` statements."""

    def __init__(self, src: _Source, fn: Callable):
        self.src = src
        self.fn = fn
        self.globals = getattr(fn, "__globals__", {})
        self.calls: list[str] = []

    def workflow(self) -> tuple[tuple[A.Arg, ...], Type, tuple[A.Stmt, ...], Span, Span]:
        fdef = self.src.tree.body[0]
        if not isinstance(fdef, ast.FunctionDef):
            raise self.src.error("@promptc.workflow decorates a plain `def` function", fdef)
        a = fdef.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
            raise self.src.error("a workflow takes plain positional arguments (no defaults, *args or **kwargs)", fdef)
        hints = type_hints(self.fn)
        args = tuple(A.Arg(name=x.arg, type=python_type(hints.get(x.arg)), span=self.src.span(x)) for x in a.args)
        returns = python_type(hints.get("return")) if "return" in hints else JSON
        body = list(fdef.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body = body[1:]  # the docstring
        bound = [set(x.arg for x in a.args)]
        stmts = self.block(body, bound, in_loop=False)
        name_span = self.src.span(fdef)
        return args, returns, stmts, self.src.span(fdef), name_span

    def block(self, body: list[ast.stmt], bound: list[set[str]], in_loop: bool) -> tuple[A.Stmt, ...]:
        return tuple(self.stmt(s, bound, in_loop) for s in body)

    def is_bound(self, name: str, bound: list[set[str]]) -> bool:
        return any(name in f for f in bound)

    def stmt(self, s: ast.stmt, bound: list[set[str]], in_loop: bool) -> A.Stmt:
        src = self.src
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1 or not isinstance(s.targets[0], ast.Name):
                raise src.error("assign to one plain variable (no unpacking, attributes or chained `a = b = ...`)", s)
            return self._assign(s.targets[0], self.expr(s.value), s, bound)
        if isinstance(s, ast.AugAssign):
            if not isinstance(s.op, ast.Add) or not isinstance(s.target, ast.Name):
                raise src.error("only `x += e` is supported among augmented assignments", s)
            if not self.is_bound(s.target.id, bound):
                raise src.error(f"'{s.target.id}' is not defined yet", s.target)
            left = A.Name(s.target.id, src.span(s.target))
            value = A.BinOp("add", left, self.expr(s.value), src.span(s))
            return A.Assign(name=s.target.id, value=value, span=src.span(s), name_span=src.span(s.target))
        if isinstance(s, ast.AnnAssign):
            raise src.error("annotated assignments are not supported in a workflow; write `x = ...`", s)
        if isinstance(s, ast.Return):
            if s.value is None:
                raise src.error("a workflow returns a value: `return EXPR`", s)
            return A.Return(value=self.expr(s.value), span=src.span(s))
        if isinstance(s, ast.For):
            return self._for(s, bound)
        if isinstance(s, ast.While):
            raise src.error("`while` loops are unbounded; write `for _ in range(N):` ending with `if COND: break`", s)
        if isinstance(s, ast.If):
            if any(isinstance(b, ast.Break) for b in s.body):
                raise src.error("`if COND: break` is only supported as the last statement of a `for _ in range(N)` loop", s)
            cond = self.expr(s.test)
            body = self.block(s.body, bound + [set()], in_loop)
            orelse = self.block(s.orelse, bound + [set()], in_loop)
            return A.If(cond=cond, body=body, orelse=orelse, span=src.span(s))
        if isinstance(s, ast.Break):
            raise src.error("`break` is only supported as `if COND: break`, the last statement of a loop", s)
        if isinstance(s, ast.Expr):
            raise src.error("an expression statement has no effect; assign its value to a variable", s)
        if isinstance(s, ast.Pass):
            raise src.error("`pass` is not supported in a workflow", s)
        raise src.error(f"`{type(s).__name__}` statements are not supported in a workflow (supported: {_SUPPORTED})", s)

    def _assign(self, target: ast.Name, value: A.Expr, s: ast.stmt, bound: list[set[str]]) -> A.Stmt:
        span, name_span = self.src.span(s), self.src.span(target)
        if self.is_bound(target.id, bound):
            return A.Assign(name=target.id, value=value, span=span, name_span=name_span)
        bound[-1].add(target.id)
        return A.Let(name=target.id, value=value, span=span, name_span=name_span)

    def _for(self, s: ast.For, bound: list[set[str]]) -> A.Stmt:
        src = self.src
        if s.orelse:
            raise src.error("`for ... else` is not supported", s.orelse[0])
        if not isinstance(s.target, ast.Name):
            raise src.error("the loop variable must be a plain name", s.target)
        it = s.iter
        if isinstance(it, ast.Subscript) and isinstance(it.slice, ast.Slice):
            return self._for_each(s, it, bound)
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"):
            raise src.error(
                "a workflow loop iterates over `range(N)` or, to fan out over a list, `xs[:N]`, with a constant N", it
            )
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range" and not it.keywords):
            raise src.error("a workflow loop iterates over `range(N)` with a constant N", it)
        if len(it.args) == 1:
            start: A.Expr = A.Literal(0, src.span(it))
            stop = self._const_int(it.args[0])
        elif len(it.args) == 2:
            start, stop = self._const_int(it.args[0]), self._const_int(it.args[1])
        else:
            raise src.error("use `range(N)`: a workflow loop counts from 0 in steps of 1", it)
        body = list(s.body)
        last = body[-1]
        is_break = (
            isinstance(last, ast.If)
            and not last.orelse
            and len(last.body) == 1
            and isinstance(last.body[0], ast.Break)
        )
        inner = bound + [set()]
        if is_break:
            assert isinstance(last, ast.If)
            if s.target.id != "_" and any(isinstance(n, ast.Name) and n.id == s.target.id for b in body for n in ast.walk(b)):
                raise src.error(
                    "a loop that ends with `if COND: break` is a `loop max N`, which has no index; name it `_`", s.target
                )
            if not (isinstance(start, A.Literal) and start.value == 0):
                raise src.error("use `range(N)`: a workflow loop counts from 0", it)
            stmts = self.block(body[:-1], inner, in_loop=True)
            brk = A.BreakIf(cond=self.expr(last.test), span=src.span(last))
            return A.LoopMax(bound=stop, body=stmts + (brk,), span=src.span(s))
        inner[-1].add(s.target.id)
        stmts = self.block(body, inner, in_loop=True)
        return A.For(var=s.target.id, start=start, stop=stop, body=stmts, span=src.span(s), var_span=src.span(s.target))

    def _for_each(self, s: ast.For, it: ast.Subscript, bound: list[set[str]]) -> A.Stmt:
        """`for x in xs[:N]:` -> `for x in xs max N`."""
        src = self.src
        sl = it.slice
        assert isinstance(sl, ast.Slice)
        if sl.lower is not None or sl.step is not None or sl.upper is None:
            raise src.error("fan out over the first N items: `for x in xs[:N]` with a constant N", sl)
        assert isinstance(s.target, ast.Name)
        inner = bound + [{s.target.id}]
        body = self.block(list(s.body), inner, in_loop=True)
        return A.ForEach(
            var=s.target.id,
            items=self.expr(it.value),
            bound=self._const_int(sl.upper),
            body=body,
            span=src.span(s),
            var_span=src.span(s.target),
        )

    def _const_int(self, e: ast.expr) -> A.Expr:
        """An int literal, or a module-level int constant by name; anything else is left to lowering's check."""
        if isinstance(e, ast.Name):
            v = self.globals.get(e.id)
            if isinstance(v, int) and not isinstance(v, bool):
                return A.Literal(v, self.src.span(e))
            raise self.src.error(f"unbounded loop: the bound '{e.id}' is not a module-level int constant", e)
        return self.expr(e)

    def expr(self, e: ast.expr) -> A.Expr:
        src = self.src
        span = src.span(e)
        if isinstance(e, ast.Name):
            return A.Name(e.id, span)
        if isinstance(e, ast.Constant):
            if isinstance(e.value, (str, int, float)) and e.value is not None and not isinstance(e.value, complex):
                return A.Literal(e.value, span)
            raise src.error(f"unsupported constant {e.value!r} (str, int, float or bool only)", e)
        if isinstance(e, ast.UnaryOp):
            if isinstance(e.op, ast.Not):
                return A.Not(self.expr(e.operand), span)
            if isinstance(e.op, ast.USub) and isinstance(e.operand, ast.Constant) and type(e.operand.value) in (int, float):
                return A.Literal(-e.operand.value, span)
            raise src.error("unsupported operator (supported: + == != < <= > >= and or not)", e)
        if isinstance(e, ast.BinOp):
            if not isinstance(e.op, ast.Add):
                raise src.error("unsupported operator (supported: + == != < <= > >= and or not)", e)
            return A.BinOp("add", self.expr(e.left), self.expr(e.right), span)
        if isinstance(e, ast.BoolOp):
            op = "and" if isinstance(e.op, ast.And) else "or"
            out = self.expr(e.values[0])
            for v in e.values[1:]:
                right = self.expr(v)
                out = A.BinOp(op, out, right, A_join(out.span, right.span))
            return out
        if isinstance(e, ast.Compare):
            if len(e.ops) != 1 or type(e.ops[0]) not in _CMP:
                raise src.error("one comparison at a time, with == != < <= > or >=", e)
            return A.BinOp(_CMP[type(e.ops[0])], self.expr(e.left), self.expr(e.comparators[0]), span)
        if isinstance(e, ast.Call):
            if not isinstance(e.func, ast.Name):
                raise src.error("only llms and functions declared at module level can be called, by name", e.func)
            if e.keywords or any(isinstance(a, ast.Starred) for a in e.args):
                raise src.error("call with positional arguments only", e)
            self.calls.append(e.func.id)
            return A.Call(e.func.id, tuple(self.expr(a) for a in e.args), span, src.span(e.func))
        if isinstance(e, ast.Attribute):
            return A.Field(self.expr(e.value), e.attr, span)
        if isinstance(e, ast.Subscript):
            if isinstance(e.slice, ast.Slice):
                raise src.error("slices are not supported; index with an int constant, like x[0]", e.slice)
            return A.Index(self.expr(e.value), self.expr(e.slice), span)
        if isinstance(e, ast.List):
            return A.ListExpr(tuple(self.expr(x) for x in e.elts), span)
        if isinstance(e, ast.JoinedStr):
            raise src.error("f-strings are not supported in a workflow; build text with +", e)
        raise src.error(f"`{type(e).__name__}` expressions are not supported in a workflow", e)
