"""The parser's actions for declarations and types (statements and expressions:
`parse_body`). Duplicate record fields and enum labels are found with a set: linear in
the size of the type."""

from __future__ import annotations

import difflib
from typing import Any

from promptc.errors import CompileError
from promptc.frontend import ast as A
from promptc.frontend.parse_reduce import ActionBase
from promptc.frontend.parse_values import decode_string, int_literal, values
from promptc.ir import MODEL_OPTIONS, check_model_option
from promptc.types import SCALARS, Type, list_of

# The largest `demos(max = K)`: every demo is sent with every call of its llm.
MAX_DEMOS = 10_000


class DeclActions(ActionBase):
    """Declarations and types: one method per rule (or alias) of the grammar; `c` is the
    rule's children, tokens included."""

    # -- top level
    def start(self, c):
        return values(c)

    def std_module(self, c):
        return self.node(("std", ".".join(str(n) for n in c[::2]), self.span(c)), c)

    def path_module(self, c):
        return self.node(("path", decode_string(str(c[0])), self.span(c)), c)

    def import_item(self, c):
        attr, _as, alias = c
        return self.node(
            A.ImportName(attr=str(attr), alias=self.checked_name(alias) if alias is not None else None, span=self.span(c)), c
        )

    def use_decl(self, c):
        kind, module, mspan = c[1].v
        names = values(c[2:])
        if kind == "std" and not module.startswith("std."):
            raise CompileError(
                f"unknown module '{module}': standard modules are 'std.<name>', a file is a string like \"tools.py\"",
                mspan,
            )
        return self.node(A.Use(module=module, names=tuple(names), span=self.span(c)), c)

    def model_fixed(self, c):
        return self.node((decode_string(str(c[0])), None), c)

    def model_env(self, c):
        var, default = c[2], c[4]
        value = (decode_string(str(default)) if default is not None else "local/default", decode_string(str(var)))
        return self.node(value, c)

    def model_decl(self, c):
        name = c[1]
        default, env = c[3].v
        options = c[4].v if len(c) > 4 and c[4] is not None else ()
        return self.node(
            A.ModelDecl(
                name=self.checked_name(name), default=default, env=env, span=self.span(c), name_span=self.tok_span(name),
                options=options,
            ),
            c,
        )

    def model_options(self, c):
        seen: dict[str, Any] = {}
        for key, value, key_span, value_span in values(c):
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
        return self.node(tuple(sorted(seen.items())), c)

    def model_option(self, c):
        key, value = c
        return self.node((str(key), value.v, self.tok_span(key), self.span([value])), c)

    def opt_string(self, c):
        return self.node(decode_string(str(c[0])), c)

    def opt_int(self, c):
        return self.node(int(c[0]), c)

    def opt_float(self, c):
        return self.node(float(c[0]), c)

    def opt_true(self, c):
        return self.node(True, c)

    def opt_false(self, c):
        return self.node(False, c)

    def kind_prompt(self, c):
        return self.node(("prompt", None), c)

    def kind_demos(self, c):
        tok = c[4]
        k = int_literal(tok, self.state.file)
        if k < 1:
            raise CompileError("demos(max = K) needs K >= 1", self.tok_span(tok))
        if k > MAX_DEMOS:
            raise CompileError(f"demos(max = K) allows at most K = {MAX_DEMOS}", self.tok_span(tok))
        return self.node(("demos", k), c)

    def role(self, c):
        return self.node(("role", decode_string(str(c[0]))), c)

    def param_value(self, c):
        return self.node(("value", c[1], self.span(c)), c)

    def string(self, c):
        return c[0]  # the STRING or LONG_STRING token: it has its own position

    def param_decl(self, c):
        name, (kind, k), trainable, role, value = c[1], c[3].v, c[4], c[5], c[6]
        text = ""
        if value is not None:
            if kind == "demos":
                raise CompileError("a demos param has no '= value' (its demos are collected by training)", value.v[2])
            text = decode_string(str(value.v[1]))  # plain text: it is substituted, not rendered
        return self.node(
            A.ParamDecl(
                name=self.checked_name(name),
                kind=kind,
                trainable=trainable is not None,
                role=role.v[1] if role is not None else "",
                text=text,
                max_demos=k,
                span=self.span(c),
                name_span=self.tok_span(name),
            ),
            c,
        )

    def arg(self, c):
        name, _colon, ty = c
        return self.node(A.Arg(name=self.checked_name(name), type=ty.v, span=self.span(c)), c)

    def arg_list(self, c):
        return self.node(tuple(values(c)), c)

    def message(self, c):
        role, tok = c
        return self.node(self.template(tok, str(role), self.span(c)), c)

    def demos_entry(self, c):
        return self.node(A.DemosEntry(param=str(c[1]), span=self.span(c)), c)

    def llm_decl(self, c):
        name, args, returns, model = c[1], c[3], c[6].v, c[8]
        entries = values(c[10:])
        return self.node(
            A.LlmDecl(
                name=self.checked_name(name),
                params=args.v if args is not None else (),
                returns=returns,
                model=str(model),
                model_span=self.tok_span(model),
                entries=tuple(entries),
                span=self.span(c),
                name_span=self.tok_span(name),
            ),
            c,
        )

    def workflow_decl(self, c):
        name, args, returns, body = c[1], c[3], c[6].v, c[7].v
        return self.node(
            A.WorkflowDecl(
                name=self.checked_name(name),
                params=args.v if args is not None else (),
                returns=returns,
                body=body,
                span=self.span(c),
                name_span=self.tok_span(name),
            ),
            c,
        )

    def train_entry(self, c):
        key, value = c
        return self.node(A.TrainEntry(key=str(key), value=str(value), span=self.span(c)), c)

    def supports_entry(self, c):
        key, value, _in, fld = c
        return self.node(
            A.TrainEntry(
                key=str(key), value=str(value), span=self.span(c), field=str(fld),
                value_span=self.tok_span(value), field_span=self.tok_span(fld),
            ),
            c,
        )

    def train_decl(self, c):
        name = c[1]
        entries = values(c[3:])
        return self.node(
            A.TrainDecl(
                workflow=str(name),
                entries=tuple(entries),
                span=self.span(c),
                workflow_span=self.tok_span(name),
            ),
            c,
        )

    # -- types
    def type_name(self, c):
        (tok,) = c
        name = str(tok)
        if name in SCALARS:
            return self.node(Type(name), c)
        if name in ("list", "enum"):
            hint = "list[T]" if name == "list" else "enum[A, B, ...]"
            raise CompileError(f"'{name}' needs its parameters: {hint}", self.tok_span(tok))
        raise CompileError(
            f"unknown type '{name}' (types are text, int, float, bool, json, list[T], enum[A, ...], {{field: T}})",
            self.tok_span(tok),
        )

    def type_generic(self, c):
        tok, elem = c[0], c[2].v
        if str(tok) != "list":
            raise CompileError(f"unknown generic type '{tok}' (only list[T])", self.tok_span(tok))
        return self.node(list_of(elem), c)

    def enum_label(self, c):
        tok = c[0]
        value = decode_string(str(tok)) if tok.type == "STRING" else str(tok)
        return self.node((value, self.span(c)), c)

    def type_enum(self, c):
        labels: dict[str, None] = {}
        for value, span in values(c):
            if value in labels:
                raise CompileError(f"duplicate enum label '{value}'", span)
            labels[value] = None
        return self.node(Type("enum", labels=tuple(labels)), c)

    def record_field(self, c):
        name, _colon, ty = c
        return self.node((str(name), ty.v, self.span(c)), c)

    def type_record(self, c):
        fields: dict[str, Type] = {}
        for name, ty, span in values(c):
            if name in fields:
                raise CompileError(f"duplicate record field '{name}'", span)
            fields[name] = ty
        return self.node(Type("record", fields=tuple(fields.items())), c)
