"""The parser's actions: the AST records built as the LALR parser reduces (the
declarations and types here, statements and expressions in `parse_body`), string
literals (`decode_string`) and integer literals."""

from __future__ import annotations

import difflib
import threading
from typing import Any

from lark import Token

from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc import template as T
from promptc.ir import MODEL_OPTIONS, check_model_option
from promptc.types import SCALARS, Type, list_of
from promptc.frontend.parse_body import BodyActions
from promptc.frontend.parse_values import _N, _first, _int, _last, _tok_span, _values, decode_string

# The largest `demos(max = K)`: every demo is sent with every call of its llm.
MAX_DEMOS = 10_000
# Words that can never be the name of a declaration or a variable.
RESERVED = frozenset("use model param llm workflow train let for in loop break if else return via and or not true false".split())


# ---- reductions -> AST -------------------------------------------------------------------
#
# The AST is built while the LALR parser reduces (lark's inline `transformer=`), not by a
# second pass over a parse tree: no tree, no per-node meta bookkeeping. Lark keeps every
# token in the children (`keep_all_tokens`), so each action sees the keywords and brackets
# of its rule and knows its extent: a rule's span runs from the start of its first token
# to the end of its last one, which is what `propagate_positions` used to give the tree.
# A rule's value is an `_N` carrying that extent; `( expr )` passes the inner value on
# with the extent of the parentheses, so an enclosing rule's span includes them while the
# inner expression keeps its own span.
#
# The first `CompileError` an action raises is kept and raised after the parse: a syntax
# error anywhere in the file wins over it, and among actions the first in reduction order
# (children before parents, left to right) wins, as with a transform after the parse.


class _Actions(BodyActions):
    """One method per rule (or alias) of the grammar; `c` is the rule's children, tokens included."""

    def __init__(self) -> None:
        self._local = threading.local()  # file, error: per parse

    # -- helpers
    def _node(self, v: Any, c: list) -> _N:
        return _N(v, _first(c), _last(c))

    def _between(self, first: Any, last: Any) -> Span:
        """The span from the start of `first` to the end of `last` (tokens or `_N`s)."""
        return Span(self._local.file, first.line, first.column, last.end_line, last.end_column)

    def _span(self, c: list) -> Span:
        first = _first(c)
        if first is None:
            return Span(self._local.file, 1, 1)
        last = _last(c)
        return Span(self._local.file, first.line, first.column, last.end_line, last.end_column)

    def _name(self, tok: Token) -> str:
        if str(tok) in RESERVED:
            raise CompileError(f"'{tok}' is a reserved word and cannot be used as a name", _tok_span(self._local.file, tok))
        return str(tok)

    def _template(self, tok: Token, role: str, span: Span) -> A.Message:
        raw = str(tok)
        try:
            found = T.scan(raw)
        except T.TemplateError as e:
            raise CompileError(f"bad template: {e.message}", self._offset_span(tok, e.offset, e.offset + 1)) from None
        holes = tuple(A.Placeholder(name, self._offset_span(tok, s, e)) for name, s, e in found)
        return A.Message(role=role, template=decode_string(raw), placeholders=holes, span=span)

    def _offset_span(self, tok: Token, start: int, end: int) -> Span:
        raw = str(tok)
        before = raw[:start]
        nl = before.count("\n")
        if nl == 0:
            col = tok.column + start
        else:
            col = start - before.rfind("\n")
        return Span(self._local.file, tok.line + nl, col, tok.line + nl, col + (end - start))

    def callbacks(self) -> Any:
        """The actions as lark calls them: each wrapped to keep the first `CompileError`."""
        ns = type("_Callbacks", (), {})()
        for name in self.names():
            setattr(ns, name, _guarded(getattr(self, name), self._local))
        return ns

    def names(self) -> list[str]:
        """The rules and aliases that have an action."""
        return [n for n in dir(type(self)) if not n.startswith("_") and n not in ("callbacks", "names")]

    # -- top level
    def start(self, c):
        return _values(c)

    def std_module(self, c):
        return self._node(("std", ".".join(str(n) for n in c[::2]), self._span(c)), c)

    def path_module(self, c):
        return self._node(("path", decode_string(str(c[0])), self._span(c)), c)

    def import_item(self, c):
        attr, _as, alias = c
        return self._node(
            A.ImportName(attr=str(attr), alias=self._name(alias) if alias is not None else None, span=self._span(c)), c
        )

    def use_decl(self, c):
        kind, module, mspan = c[1].v
        names = _values(c[2:])
        if kind == "std" and not module.startswith("std."):
            raise CompileError(
                f"unknown module '{module}': standard modules are 'std.<name>', a file is a string like \"tools.py\"",
                mspan,
            )
        return self._node(A.Use(module=module, names=tuple(names), span=self._span(c)), c)

    def model_fixed(self, c):
        return self._node((decode_string(str(c[0])), None), c)

    def model_env(self, c):
        var, default = c[2], c[4]
        value = (decode_string(str(default)) if default is not None else "local/default", decode_string(str(var)))
        return self._node(value, c)

    def model_decl(self, c):
        name = c[1]
        default, env = c[3].v
        options = c[4].v if len(c) > 4 and c[4] is not None else ()
        file = self._local.file
        return self._node(
            A.ModelDecl(
                name=self._name(name), default=default, env=env, span=self._span(c), name_span=_tok_span(file, name),
                options=options,
            ),
            c,
        )

    def model_options(self, c):
        seen: dict[str, Any] = {}
        for key, value, key_span, value_span in _values(c):
            if key in seen:
                raise CompileError(f"model option '{key}' is given twice", key_span)
            if key not in MODEL_OPTIONS:
                close = difflib.get_close_matches(key, list(MODEL_OPTIONS), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "options: " + ", ".join(MODEL_OPTIONS)
                raise CompileError(f"unknown model option '{key}' ({hint})", key_span)
            try:
                seen[key] = check_model_option(key, value)
            except ValueError as e:
                raise CompileError(str(e), value_span) from None
        return self._node(tuple(sorted(seen.items())), c)

    def model_option(self, c):
        key, value = c
        return self._node((str(key), value.v, _tok_span(self._local.file, key), self._span([value])), c)

    def opt_string(self, c):
        return self._node(decode_string(str(c[0])), c)

    def opt_int(self, c):
        return self._node(int(c[0]), c)

    def opt_float(self, c):
        return self._node(float(c[0]), c)

    def opt_true(self, c):
        return self._node(True, c)

    def opt_false(self, c):
        return self._node(False, c)

    def kind_prompt(self, c):
        return self._node(("prompt", None), c)

    def kind_demos(self, c):
        tok = c[4]
        k = _int(tok, self._local.file)
        if k < 1:
            raise CompileError("demos(max = K) needs K >= 1", _tok_span(self._local.file, tok))
        if k > MAX_DEMOS:
            raise CompileError(f"demos(max = K) allows at most K = {MAX_DEMOS}", _tok_span(self._local.file, tok))
        return self._node(("demos", k), c)

    def role(self, c):
        return self._node(("role", decode_string(str(c[0]))), c)

    def param_value(self, c):
        return self._node(("value", c[1], self._span(c)), c)

    def string(self, c):
        return c[0]  # the STRING or LONG_STRING token: it has its own position

    def param_decl(self, c):
        name, (kind, k), trainable, role, value = c[1], c[3].v, c[4], c[5], c[6]
        text = ""
        if value is not None:
            if kind == "demos":
                raise CompileError("a demos param has no '= value' (its demos are collected by training)", value.v[2])
            text = decode_string(str(value.v[1]))  # plain text: it is substituted, not rendered
        return self._node(
            A.ParamDecl(
                name=self._name(name),
                kind=kind,
                trainable=trainable is not None,
                role=role.v[1] if role is not None else "",
                text=text,
                max_demos=k,
                span=self._span(c),
                name_span=_tok_span(self._local.file, name),
            ),
            c,
        )

    def arg(self, c):
        name, _colon, ty = c
        return self._node(A.Arg(name=self._name(name), type=ty.v, span=self._span(c)), c)

    def arg_list(self, c):
        return self._node(tuple(_values(c)), c)

    def message(self, c):
        role, tok = c
        return self._node(self._template(tok, str(role), self._span(c)), c)

    def demos_entry(self, c):
        return self._node(A.DemosEntry(param=str(c[1]), span=self._span(c)), c)

    def llm_decl(self, c):
        name, args, returns, model = c[1], c[3], c[6].v, c[8]
        entries = _values(c[10:])
        file = self._local.file
        return self._node(
            A.LlmDecl(
                name=self._name(name),
                params=args.v if args is not None else (),
                returns=returns,
                model=str(model),
                model_span=_tok_span(file, model),
                entries=tuple(entries),
                span=self._span(c),
                name_span=_tok_span(file, name),
            ),
            c,
        )

    def workflow_decl(self, c):
        name, args, returns, body = c[1], c[3], c[6].v, c[7].v
        return self._node(
            A.WorkflowDecl(
                name=self._name(name),
                params=args.v if args is not None else (),
                returns=returns,
                body=body,
                span=self._span(c),
                name_span=_tok_span(self._local.file, name),
            ),
            c,
        )

    def train_entry(self, c):
        key, value = c
        return self._node(A.TrainEntry(key=str(key), value=str(value), span=self._span(c)), c)

    def train_decl(self, c):
        name = c[1]
        entries = _values(c[3:])
        return self._node(
            A.TrainDecl(
                workflow=str(name),
                entries=tuple(entries),
                span=self._span(c),
                workflow_span=_tok_span(self._local.file, name),
            ),
            c,
        )

    # -- types
    def type_name(self, c):
        (tok,) = c
        name = str(tok)
        if name in SCALARS:
            return self._node(Type(name), c)
        if name in ("list", "enum"):
            hint = "list[T]" if name == "list" else "enum[A, B, ...]"
            raise CompileError(f"'{name}' needs its parameters: {hint}", _tok_span(self._local.file, tok))
        raise CompileError(
            f"unknown type '{name}' (types are text, int, float, bool, json, list[T], enum[A, ...], {{field: T}})",
            _tok_span(self._local.file, tok),
        )

    def type_generic(self, c):
        tok, elem = c[0], c[2].v
        if str(tok) != "list":
            raise CompileError(f"unknown generic type '{tok}' (only list[T])", _tok_span(self._local.file, tok))
        return self._node(list_of(elem), c)

    def enum_label(self, c):
        tok = c[0]
        value = decode_string(str(tok)) if tok.type == "STRING" else str(tok)
        return self._node((value, self._span(c)), c)

    def type_enum(self, c):
        labels: list[str] = []
        for value, span in _values(c):
            if value in labels:
                raise CompileError(f"duplicate enum label '{value}'", span)
            labels.append(value)
        return self._node(Type("enum", labels=tuple(labels)), c)

    def record_field(self, c):
        name, _colon, ty = c
        return self._node((str(name), ty.v, self._span(c)), c)

    def type_record(self, c):
        fields: list[tuple[str, Type]] = []
        for name, ty, span in _values(c):
            if any(n == name for n, _ in fields):
                raise CompileError(f"duplicate record field '{name}'", span)
            fields.append((name, ty))
        return self._node(Type("record", fields=tuple(fields)), c)


def _guarded(action: Any, local: threading.local) -> Any:
    def callback(children: list) -> Any:
        if local.error is not None:
            return None  # an earlier action failed: the rest of the parse only looks for syntax errors
        try:
            return action(children)
        except CompileError as e:
            local.error = e
            return None

    callback.__name__ = action.__name__
    return callback


_ACTIONS = _Actions()
