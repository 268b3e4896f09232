"""The parser's actions for statements and expressions (declarations and types:
`parse_decls`)."""

from __future__ import annotations

import math

from promptc.errors import CompileError
from promptc.frontend import ast as A
from promptc.frontend.parse_reduce import ActionBase
from promptc.frontend.parse_values import Reduced, decode_string, int_literal, join_spans, shorten, values


class BodyActions(ActionBase):
    """Statements and expressions: one method per rule (or alias) of the grammar."""

    # -- statements
    # The hot rules below take their first and last child by position (required symbols,
    # never a missing optional) instead of searching for them.
    def block(self, c):
        return Reduced(tuple(values(c)), c[0], c[-1])

    def let_stmt(self, c):
        first, name, last = c[0], c[1], c[3]
        span = self.between(first, last)
        return Reduced(
            A.Let(name=self.checked_name(name), value=last.v, span=span, name_span=self.tok_span(name)), first, last
        )

    def assign_stmt(self, c):
        name, last = c[0], c[2]
        span = self.between(name, last)
        return Reduced(
            A.Assign(name=self.checked_name(name), value=last.v, span=span, name_span=self.tok_span(name)),
            name,
            last,
        )

    def return_stmt(self, c):
        first, last = c
        return Reduced(A.Return(value=last.v, span=self.between(first, last)), first, last)

    def for_stmt(self, c):
        var, start, stop, body = c[1], c[3].v, c[5].v, c[6].v
        return self.node(
            A.For(
                var=self.checked_name(var),
                start=start,
                stop=stop,
                body=body,
                span=self.span(c),
                var_span=self.tok_span(var),
            ),
            c,
        )

    def for_each_stmt(self, c):
        var, items, bound, body = c[1], c[3].v, c[5].v, c[6].v
        return self.node(
            A.ForEach(
                var=self.checked_name(var),
                items=items,
                bound=bound,
                body=body,
                span=self.span(c),
                var_span=self.tok_span(var),
            ),
            c,
        )

    def for_unbounded(self, c):
        raise CompileError(
            f"unbounded fan-out: write `for {c[1]} in LIST max N {{ ... }}` with a constant N", self.between(c[0], c[3])
        )

    def if_stmt(self, c):
        cond, body = c[1].v, c[2].v
        orelse: tuple = ()
        if len(c) > 3 and c[4] is not None:
            other = c[4].v
            orelse = (other,) if isinstance(other, A.If) else other
        return self.node(A.If(cond=cond, body=body, orelse=orelse, span=self.span(c)), c)

    def loop_stmt(self, c):
        bound, body = c[2], c[3].v
        return self.node(A.LoopMax(bound=bound.v if bound is not None else None, body=body, span=self.span(c)), c)

    def break_stmt(self, c):
        return self.node(A.BreakIf(cond=c[2].v, span=self.span(c)), c)

    # -- expressions
    def _binop(self, c, op):
        first, last = c[0], c[2]
        left, right = first.v, last.v
        return Reduced(A.BinOp(op=op, left=left, right=right, span=join_spans(left.span, right.span)), first, last)

    def or_(self, c):
        return self._binop(c, "or")

    def and_(self, c):
        return self._binop(c, "and")

    def add(self, c):
        return self._binop(c, "add")

    def not_(self, c):
        first, last = c
        return Reduced(A.Not(operand=last.v, span=self.between(first, last)), first, last)

    _CMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}

    def compare(self, c):
        first, op, last = c
        span = self.between(first, last)
        return Reduced(A.BinOp(op=self._CMP[str(op)], left=first.v, right=last.v, span=span), first, last)

    def call(self, c):
        first, last = c[0], c[-1]
        func = first.v
        args = values(c[2:])
        if not isinstance(func, A.Name):
            raise CompileError("only a declared llm or function can be called, by its name", func.span)
        return Reduced(A.Call(func=func.id, args=tuple(args), span=self.between(first, last), func_span=func.span), first, last)

    def field(self, c):
        first, _dot, last = c
        return Reduced(A.Field(value=first.v, name=str(last), span=self.between(first, last)), first, last)

    def index(self, c):
        first, last = c[0], c[3]
        return Reduced(A.Index(value=first.v, index=c[2].v, span=self.between(first, last)), first, last)

    def atom(self, c):
        # `( expr )`: the expression keeps its span; the enclosing rule sees the parentheses
        return Reduced(c[1].v, c[0], c[2])

    def name(self, c):
        tok = c[0]
        return Reduced(A.Name(id=str(tok), span=self.tok_span(tok)), tok, tok)

    def string_lit(self, c):
        tok = c[0]
        return Reduced(A.Literal(value=decode_string(str(tok)), span=self.tok_span(tok)), tok, tok)

    def int_lit(self, c):
        tok = c[0]
        return Reduced(A.Literal(value=int_literal(tok, self.state.file), span=self.tok_span(tok)), tok, tok)

    def float_lit(self, c):
        tok = c[0]
        value = float(str(tok))
        if not math.isfinite(value):
            raise CompileError(f"number {shorten(str(tok))} is out of range (too large for a float)", self.tok_span(tok))
        return Reduced(A.Literal(value=value, span=self.tok_span(tok)), tok, tok)

    def true_lit(self, c):
        return self.node(A.Literal(value=True, span=self.span(c)), c)

    def false_lit(self, c):
        return self.node(A.Literal(value=False, span=self.span(c)), c)

    def list_lit(self, c):
        first, last = c[0], c[-1]
        return Reduced(A.ListExpr(items=tuple(values(c)), span=self.between(first, last)), first, last)
