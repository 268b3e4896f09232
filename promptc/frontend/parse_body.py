"""The parser's actions for statements and expressions (the rest: `parse_actions`)."""

from __future__ import annotations

import math


from promptc.errors import CompileError
from promptc.frontend import ast as A
from promptc.frontend.parse_errors import _short
from promptc.frontend.parse_values import _N, _int, _join, _tok_span, _values, decode_string


class BodyActions:
    """Statements and expressions; the helpers (`_span`, `_name`, ...) are `_Actions`'."""

    # -- statements
    # The hot rules below take their first and last child by position (required symbols,
    # never a missing optional) instead of searching for them.
    def block(self, c):
        return _N(tuple(_values(c)), c[0], c[-1])

    def let_stmt(self, c):
        first, name, last = c[0], c[1], c[3]
        span = self._between(first, last)
        return _N(
            A.Let(name=self._name(name), value=last.v, span=span, name_span=_tok_span(self._local.file, name)), first, last
        )

    def assign_stmt(self, c):
        name, last = c[0], c[2]
        span = self._between(name, last)
        return _N(
            A.Assign(name=self._name(name), value=last.v, span=span, name_span=_tok_span(self._local.file, name)),
            name,
            last,
        )

    def return_stmt(self, c):
        first, last = c
        return _N(A.Return(value=last.v, span=self._between(first, last)), first, last)

    def for_stmt(self, c):
        var, start, stop, body = c[1], c[3].v, c[5].v, c[6].v
        return self._node(
            A.For(
                var=self._name(var),
                start=start,
                stop=stop,
                body=body,
                span=self._span(c),
                var_span=_tok_span(self._local.file, var),
            ),
            c,
        )

    def for_each_stmt(self, c):
        var, items, bound, body = c[1], c[3].v, c[5].v, c[6].v
        return self._node(
            A.ForEach(
                var=self._name(var),
                items=items,
                bound=bound,
                body=body,
                span=self._span(c),
                var_span=_tok_span(self._local.file, var),
            ),
            c,
        )

    def for_unbounded(self, c):
        raise CompileError(
            f"unbounded fan-out: write `for {c[1]} in LIST max N {{ ... }}` with a constant N", self._between(c[0], c[3])
        )

    def if_stmt(self, c):
        cond, body = c[1].v, c[2].v
        orelse: tuple = ()
        if len(c) > 3 and c[4] is not None:
            other = c[4].v
            orelse = (other,) if isinstance(other, A.If) else other
        return self._node(A.If(cond=cond, body=body, orelse=orelse, span=self._span(c)), c)

    def loop_stmt(self, c):
        bound, body = c[2], c[3].v
        return self._node(A.LoopMax(bound=bound.v if bound is not None else None, body=body, span=self._span(c)), c)

    def break_stmt(self, c):
        return self._node(A.BreakIf(cond=c[2].v, span=self._span(c)), c)

    # -- expressions
    def _binop(self, c, op):
        first, last = c[0], c[2]
        left, right = first.v, last.v
        return _N(A.BinOp(op=op, left=left, right=right, span=_join(left.span, right.span)), first, last)

    def or_(self, c):
        return self._binop(c, "or")

    def and_(self, c):
        return self._binop(c, "and")

    def add(self, c):
        return self._binop(c, "add")

    def not_(self, c):
        first, last = c
        return _N(A.Not(operand=last.v, span=self._between(first, last)), first, last)

    _CMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}

    def compare(self, c):
        first, op, last = c
        span = self._between(first, last)
        return _N(A.BinOp(op=self._CMP[str(op)], left=first.v, right=last.v, span=span), first, last)

    def call(self, c):
        first, last = c[0], c[-1]
        func = first.v
        args = _values(c[2:])
        if not isinstance(func, A.Name):
            raise CompileError("only a declared llm or function can be called, by its name", func.span)
        return _N(A.Call(func=func.id, args=tuple(args), span=self._between(first, last), func_span=func.span), first, last)

    def field(self, c):
        first, _dot, last = c
        return _N(A.Field(value=first.v, name=str(last), span=self._between(first, last)), first, last)

    def index(self, c):
        first, last = c[0], c[3]
        return _N(A.Index(value=first.v, index=c[2].v, span=self._between(first, last)), first, last)

    def atom(self, c):
        # `( expr )`: the expression keeps its span; the enclosing rule sees the parentheses
        return _N(c[1].v, c[0], c[2])

    def name(self, c):
        tok = c[0]
        return _N(A.Name(id=str(tok), span=_tok_span(self._local.file, tok)), tok, tok)

    def string_lit(self, c):
        tok = c[0]
        return _N(A.Literal(value=decode_string(str(tok)), span=_tok_span(self._local.file, tok)), tok, tok)

    def int_lit(self, c):
        tok = c[0]
        return _N(A.Literal(value=_int(tok, self._local.file), span=_tok_span(self._local.file, tok)), tok, tok)

    def float_lit(self, c):
        tok = c[0]
        value = float(str(tok))
        if not math.isfinite(value):
            raise CompileError(f"number {_short(str(tok))} is out of range (too large for a float)", _tok_span(self._local.file, tok))
        return _N(A.Literal(value=value, span=_tok_span(self._local.file, tok)), tok, tok)

    def true_lit(self, c):
        return self._node(A.Literal(value=True, span=self._span(c)), c)

    def false_lit(self, c):
        return self._node(A.Literal(value=False, span=self._span(c)), c)

    def list_lit(self, c):
        first, last = c[0], c[-1]
        return _N(A.ListExpr(items=tuple(_values(c)), span=self._between(first, last)), first, last)
