"""The syntax tree both frontends produce: the `.pflow` parser and the `@workflow` decorator.

Plain frozen records, every one with the `Span` of the source it came from, so that the
shared lowering (`promptc.frontend.lower`) can locate every error in the user's own text
(a `.pflow` file or a Python file). Types are already `promptc.types.Type` values: both
frontends resolve type syntax themselves.
"""

from __future__ import annotations

from typing import Any, Union

from attrs import frozen

from promptc.errors import Span
from promptc.types import Type

# ---- expressions ------------------------------------------------------------------------


@frozen
class Name:
    id: str
    span: Span


@frozen
class Literal:
    """A str, int, float or bool constant."""

    value: Any
    span: Span


@frozen
class ListExpr:
    items: tuple["Expr", ...]
    span: Span


@frozen
class Call:
    func: str
    args: tuple["Expr", ...]
    span: Span
    func_span: Span


@frozen
class Field:
    value: "Expr"
    name: str
    span: Span


@frozen
class Index:
    value: "Expr"
    index: "Expr"
    span: Span


@frozen
class BinOp:
    """`op` is a prim name of the IR: add eq ne lt le gt ge and or."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span


@frozen
class Not:
    operand: "Expr"
    span: Span


Expr = Union[Name, Literal, ListExpr, Call, Field, Index, BinOp, Not]

# ---- statements -------------------------------------------------------------------------


@frozen
class Let:
    name: str
    value: Expr
    span: Span
    name_span: Span


@frozen
class Assign:
    name: str
    value: Expr
    span: Span
    name_span: Span


@frozen
class Return:
    value: Expr
    span: Span


@frozen
class For:
    """`for var in start..stop { body }`; the bounds are checked to be constants by lowering."""

    var: str
    start: Expr
    stop: Expr
    body: tuple["Stmt", ...]
    span: Span
    var_span: Span


@frozen
class ForEach:
    """`for var in items max N { body }`: fan-out over a runtime list, at most N items
    (`bound` is checked to be an integer constant by lowering)."""

    var: str
    items: Expr
    bound: Expr
    body: tuple["Stmt", ...]
    span: Span
    var_span: Span


@frozen
class LoopMax:
    """`loop max N { body }`; `bound` is None for a `loop { }` without `max` (an error)."""

    bound: Expr | None
    body: tuple["Stmt", ...]
    span: Span


@frozen
class BreakIf:
    cond: Expr
    span: Span


@frozen
class If:
    """`if cond { body } else { orelse }`; an `else if` is an `orelse` holding one `If`."""

    cond: Expr
    body: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...]
    span: Span


Stmt = Union[Let, Assign, Return, For, ForEach, LoopMax, BreakIf, If]

# ---- declarations -----------------------------------------------------------------------


@frozen
class Arg:
    name: str
    type: Type
    span: Span


@frozen
class ImportName:
    attr: str
    alias: str | None
    span: Span

    @property
    def local(self) -> str:
        return self.alias or self.attr


@frozen
class Use:
    """`use std.x { a, b as c }` (module "std.x") or `use "path.py" { f }` (module "path.py")."""

    module: str
    names: tuple[ImportName, ...]
    span: Span


@frozen
class ModelDecl:
    """`options`: the checked `{ base_url "..."; timeout 30 }` entries, sorted by name."""

    name: str
    default: str
    env: str | None
    span: Span
    name_span: Span | None = None
    options: tuple[tuple[str, Any], ...] = ()


@frozen
class ParamDecl:
    """`kind` is "prompt" or "demos"; `text` the prompt's initial value (prompts only)."""

    name: str
    kind: str
    trainable: bool
    role: str
    text: str
    max_demos: int | None
    span: Span
    name_span: Span | None = None


@frozen
class Placeholder:
    """A `{name}` inside a template, with its own span for error messages."""

    name: str
    span: Span


@frozen
class Message:
    """A template entry of an `llm`: role "system", "user" or "assistant"."""

    role: str
    template: str
    placeholders: tuple[Placeholder, ...]
    span: Span


@frozen
class DemosEntry:
    param: str
    span: Span


@frozen
class LlmDecl:
    name: str
    params: tuple[Arg, ...]
    returns: Type
    model: str
    model_span: Span
    entries: tuple[Union[Message, DemosEntry], ...]
    span: Span
    name_span: Span | None = None


@frozen
class WorkflowDecl:
    name: str
    params: tuple[Arg, ...]
    returns: Type
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span | None = None


@frozen
class TrainEntry:
    """`key` is metric, answer, teacher, backward, optimizer or supports.

    `supports VALUE in FIELD` (credit for intermediate steps) also has `field`, the
    dataset field, and the spans of the value's and the field's names."""

    key: str
    value: str
    span: Span
    field: str | None = None
    value_span: Span | None = None
    field_span: Span | None = None


@frozen
class TrainDecl:
    workflow: str
    entries: tuple[TrainEntry, ...]
    span: Span
    workflow_span: Span


Decl = Union[Use, ModelDecl, ParamDecl, LlmDecl, WorkflowDecl, TrainDecl]


@frozen
class Module:
    """One source: its declarations in source order, the file name and the source text."""

    items: tuple[Decl, ...]
    file: str
    source: str
