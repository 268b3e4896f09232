"""`.pflow` text -> AST (`promptc.frontend.ast`), with spans and human parse errors.

The syntax lives in `grammar/pflow.lark` only; this module loads it once (LALR, with
positions), runs a small post-lexer that decides which newlines separate statements,
and transforms the parse tree into AST records. Every lark error becomes a located
`CompileError` ("unexpected 'x', expected one of ..."); a lark traceback never escapes.
"""

from __future__ import annotations

import functools
import re
import textwrap
import threading
from importlib import resources
from typing import Any, Iterator

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.frontend import template as T
from promptc.types import SCALARS, Type, list_of

KEYWORDS = frozenset(
    "use model param llm workflow train let for in loop max break if return via and or not "
    "true false env trainable prompt demos enum system user assistant".split()
)
# Words that can never be the name of a declaration or a variable.
RESERVED = frozenset("use model param llm workflow train let for in loop break if return via and or not true false".split())

# ---- the post-lexer: which newlines are separators ---------------------------------------

_VALUE_TOKENS = frozenset({"NAME", "STRING", "LONG_STRING", "INT", "FLOAT"})
# A newline after one of these continues the construct ...
_CONTINUE_AFTER = frozenset(
    "{ ( [ , = + == != < <= > >= and or not -> : . .. via in max as use model param llm workflow "
    "train let for loop break if return system user assistant demos metric answer teacher "
    "backward optimizer".split()
)
# ... and so does a newline before one of these (checked on the text that follows: the
# contextual lexer cannot be asked for a token ahead of the parser).
_CONTINUE_BEFORE = re.compile(r"(?:\s|#[^\n]*)*(?:$|[{})\],=+.<>!]|->|(?:and|or|via)(?![A-Za-z0-9_]))")


def _is_op(tok: Token, table: frozenset[str]) -> bool:
    return tok.type not in _VALUE_TOKENS and str(tok) in table


class _Separators:
    """Turns newlines and ';' into one `_NL` token where they end a statement, drops the rest.

    The source text is set by `parse()` (per thread) so that a newline can be judged by
    what follows it.
    """

    always_accept = ("_NL", "SEMI")

    def __init__(self) -> None:
        self._local = threading.local()

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        source: str = getattr(self._local, "source", "")
        brackets: list[str] = []
        opened: list[Token] = []  # the open brackets, for "'(' is not closed" hints
        self._local.opened = opened
        prev: Token | None = None
        for tok in stream:
            if tok.type in ("_NL", "SEMI"):
                if brackets and brackets[-1] in "([":
                    continue
                if prev is None or prev.type == "_NL" or _is_op(prev, _CONTINUE_AFTER):
                    continue
                if _CONTINUE_BEFORE.match(source, tok.end_pos):
                    continue
                tok = Token.new_borrow_pos("_NL", str(tok), tok)
            elif tok.type not in _VALUE_TOKENS:
                v = str(tok)
                if v in ("(", "[", "{"):
                    brackets.append(v)
                    opened.append(tok)
                elif v in (")", "]", "}") and brackets:
                    brackets.pop()
                    opened.pop()
            prev = tok
            yield tok


_POSTLEX = _Separators()


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    text = resources.files("promptc.grammar").joinpath("pflow.lark").read_text(encoding="utf-8")
    return Lark(
        text,
        parser="lalr",
        lexer="contextual",
        postlex=_POSTLEX,
        propagate_positions=True,
        maybe_placeholders=True,
        cache=False,
    )


def parse(source: str, file: str = "<string>") -> A.Module:
    """Parse `.pflow` text into a `Module`; every error is a `CompileError` carrying `source`."""
    try:
        try:
            _POSTLEX._local.source = source
            tree = _lark().parse(source)
        except UnexpectedInput as e:
            raise _parse_error(e, source, file) from None
        try:
            items = _ToAst(file, source).transform(tree)
        except VisitError as e:
            if isinstance(e.orig_exc, CompileError):
                raise e.orig_exc from None
            raise
    except CompileError as e:
        raise e.with_source(source)
    return A.Module(items=tuple(items.children if hasattr(items, "children") else items), file=file, source=source)


# ---- parse errors ------------------------------------------------------------------------

_DESCRIBE = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "INT": "an integer",
    "FLOAT": "a number",
    "_NL": "a newline or ';'",
    "SEMI": "';'",
    "MSG_ROLE": "'system', 'user' or 'assistant'",
    "TRAIN_KEY": "'metric', 'answer', 'teacher', 'backward' or 'optimizer'",
    "COMP_OP": "a comparison",
    "TRAINABLE": "'trainable'",
    "$END": "end of file",
}
_EXPR_START = {"NAME", "STRING", "INT", "LPAR", "LSQB"}
# Operators that may always follow a complete expression: not worth listing when
# something that ends it (a separator, a closing bracket) is also expected.
_CONTINUATIONS = {"COMP_OP", "PLUS", "DOT", "LSQB", "LPAR", "AND", "OR"}


@functools.lru_cache(maxsize=1)
def _terminal_text() -> dict[str, str]:
    out = {}
    for t in _lark().terminals:
        if t.pattern.type == "str":
            out[t.name] = repr(t.pattern.value).replace('"', "'")
    return out


def _describe_expected(names: set[str]) -> str:
    names = {n for n in names if n not in ("SEMI", "COMMENT")}
    if not _EXPR_START <= names and names - _CONTINUATIONS:
        names -= _CONTINUATIONS
    words: list[str] = []
    if _EXPR_START <= names:
        words.append("an expression")
        names -= _EXPR_START | {"LONG_STRING", "FLOAT", "TRUE", "FALSE", "NOT"}
    text = _terminal_text()
    rest = sorted({_DESCRIBE.get(n) or text.get(n) or n.lower() for n in names})
    # Keywords and punctuation after descriptions, for a stable, readable order.
    rest.sort(key=lambda w: (w.startswith("'"), w))
    words += rest
    if not words:
        return ""
    if len(words) == 1:
        return f", expected {words[0]}"
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", expected one of " + ", ".join(words)


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "';'" if str(tok) == ";" else "end of line"
    if tok.type in ("STRING", "LONG_STRING"):
        return "string " + _short(str(tok))
    return "'" + _short(str(tok)) + "'"


def _short(s: str) -> str:
    s = s.splitlines()[0] if s else s
    return s if len(s) <= 30 else s[:27] + "..."


def _parse_error(e: UnexpectedInput, source: str, file: str) -> CompileError:
    if isinstance(e, UnexpectedCharacters):
        ch = source[e.pos_in_stream] if 0 <= e.pos_in_stream < len(source) else ""
        span = Span(file, e.line, e.column, e.line, e.column + 1)
        if ch == '"':
            return CompileError("unterminated string (a \"...\" string ends on its line; use \"\"\"...\"\"\" for several lines)", span, source)
        return CompileError(f"unexpected character {ch!r}" + _describe_expected(set(e.allowed or ())), span, source)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            span = _end_span(source, file)
        else:
            end_col = tok.end_column if tok.end_line == tok.line and tok.end_column else tok.column + 1
            span = Span(file, tok.line, tok.column, tok.line, end_col)
            if tok.type == "_NL" and str(tok) != ";":
                span = Span(file, tok.line, tok.column, tok.line, tok.column + 1)
        expected = set(e.accepts or e.expected or ())
        msg = f"unexpected {_describe_token(tok)}" + _describe_expected(expected)
        opened = getattr(_POSTLEX._local, "opened", None)
        if opened and (tok.type == "$END" or (str(opened[-1]) in "([" and tok.line > opened[-1].line)):
            b = opened[-1]
            msg += f" (the '{b}' at line {b.line}, column {b.column} is not closed)"
        return CompileError(msg, span, source)
    if isinstance(e, UnexpectedEOF):
        return CompileError("unexpected end of file" + _describe_expected(set(e.expected or ())), _end_span(source, file), source)
    return CompileError(f"syntax error: {e}", Span(file, getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1), source)


def _end_span(source: str, file: str) -> Span:
    lines = source.rstrip().splitlines() or [""]
    return Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)


# ---- strings -----------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def decode_string(raw: str) -> str:
    """The value of a STRING or LONG_STRING token.

    `"..."` knows the escapes \\n \\t \\" \\\\ (any other backslash is kept as is).
    `\"\"\"...\"\"\"` is verbatim, minus the first newline, the common indentation and the
    trailing whitespace, so that a long prompt can be indented with the code.
    """
    if raw.startswith('"""'):
        inner = raw[3:-3]
        if inner.startswith("\r\n"):
            inner = inner[2:]
        elif inner.startswith("\n"):
            inner = inner[1:]
        return textwrap.dedent(inner).rstrip()
    inner = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner) and inner[i + 1] in _ESCAPES:
            out.append(_ESCAPES[inner[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---- parse tree -> AST -------------------------------------------------------------------


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, file: str, source: str):
        super().__init__(visit_tokens=False)
        self.file = file
        self.source = source

    # -- helpers
    def _span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file, 1, 1)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _name(self, tok: Token) -> str:
        if str(tok) in RESERVED:
            raise CompileError(f"'{tok}' is a reserved word and cannot be used as a name", _tok_span(self.file, tok))
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
        return Span(self.file, tok.line + nl, col, tok.line + nl, col + (end - start))

    # -- top level
    def start(self, meta, items):
        return list(items)

    def std_module(self, meta, names):
        return ("std", ".".join(str(n) for n in names), self._span(meta))

    def path_module(self, meta, children):
        return ("path", decode_string(str(children[0])), self._span(meta))

    def import_item(self, meta, children):
        attr, alias = children
        return A.ImportName(
            attr=str(attr), alias=self._name(alias) if alias is not None else None, span=self._span(meta)
        )

    def use_decl(self, meta, children):
        (kind, module, mspan), *names = children
        if kind == "std" and not module.startswith("std."):
            raise CompileError(
                f"unknown module '{module}': standard modules are 'std.<name>', a file is a string like \"tools.py\"",
                mspan,
            )
        return A.Use(module=module, names=tuple(names), span=self._span(meta))

    def model_fixed(self, meta, children):
        return (decode_string(str(children[0])), None)

    def model_env(self, meta, children):
        var, default = children
        return (decode_string(str(default)) if default is not None else "local/default", decode_string(str(var)))

    def model_decl(self, meta, children):
        name, (default, env) = children
        return A.ModelDecl(
            name=self._name(name), default=default, env=env, span=self._span(meta), name_span=_tok_span(self.file, name)
        )

    def kind_prompt(self, meta, children):
        return ("prompt", None)

    def kind_demos(self, meta, children):
        k = int(children[0])
        if k < 1:
            raise CompileError("demos(max = K) needs K >= 1", _tok_span(self.file, children[0]))
        return ("demos", k)

    def role(self, meta, children):
        return ("role", decode_string(str(children[0])))

    def param_value(self, meta, children):
        return ("value", children[0], self._span(meta))

    def string(self, meta, children):
        return children[0]

    def param_decl(self, meta, children):
        name, (kind, k), trainable, role, value = children
        text = ""
        if value is not None:
            if kind == "demos":
                raise CompileError("a demos param has no '= value' (its demos are collected by training)", value[2])
            text = decode_string(str(value[1]))  # plain text: it is substituted, not rendered
        return A.ParamDecl(
            name=self._name(name),
            kind=kind,
            trainable=trainable is not None,
            role=role[1] if role is not None else "",
            text=text,
            max_demos=k,
            span=self._span(meta),
            name_span=_tok_span(self.file, name),
        )

    def arg(self, meta, children):
        name, ty = children
        return A.Arg(name=self._name(name), type=ty, span=self._span(meta))

    def arg_list(self, meta, children):
        return tuple(children)

    def message(self, meta, children):
        role, tok = children
        return self._template(tok, str(role), self._span(meta))

    def demos_entry(self, meta, children):
        return A.DemosEntry(param=str(children[0]), span=self._span(meta))

    def llm_decl(self, meta, children):
        name, args, returns, model, *entries = children
        return A.LlmDecl(
            name=self._name(name),
            params=args or (),
            returns=returns,
            model=str(model),
            model_span=_tok_span(self.file, model),
            entries=tuple(entries),
            span=self._span(meta),
            name_span=_tok_span(self.file, name),
        )

    def workflow_decl(self, meta, children):
        name, args, returns, body = children
        return A.WorkflowDecl(
            name=self._name(name),
            params=args or (),
            returns=returns,
            body=body,
            span=self._span(meta),
            name_span=_tok_span(self.file, name),
        )

    def train_entry(self, meta, children):
        key, value = children
        return A.TrainEntry(key=str(key), value=str(value), span=self._span(meta))

    def train_decl(self, meta, children):
        name, *entries = children
        return A.TrainDecl(
            workflow=str(name), entries=tuple(entries), span=self._span(meta), workflow_span=_tok_span(self.file, name)
        )

    # -- types
    def type_name(self, meta, children):
        (tok,) = children
        name = str(tok)
        if name in SCALARS:
            return Type(name)
        if name in ("list", "enum"):
            hint = "list[T]" if name == "list" else "enum[A, B, ...]"
            raise CompileError(f"'{name}' needs its parameters: {hint}", _tok_span(self.file, tok))
        raise CompileError(
            f"unknown type '{name}' (types are text, int, float, bool, json, list[T], enum[A, ...], {{field: T}})",
            _tok_span(self.file, tok),
        )

    def type_generic(self, meta, children):
        tok, elem = children
        if str(tok) != "list":
            raise CompileError(f"unknown generic type '{tok}' (only list[T])", _tok_span(self.file, tok))
        return list_of(elem)

    def enum_label(self, meta, children):
        tok = children[0]
        value = decode_string(str(tok)) if tok.type == "STRING" else str(tok)
        return (value, self._span(meta))

    def type_enum(self, meta, children):
        labels: list[str] = []
        for value, span in children:
            if value in labels:
                raise CompileError(f"duplicate enum label '{value}'", span)
            labels.append(value)
        return Type("enum", labels=tuple(labels))

    def record_field(self, meta, children):
        name, ty = children
        return (str(name), ty, self._span(meta))

    def type_record(self, meta, children):
        fields: list[tuple[str, Type]] = []
        for name, ty, span in children:
            if any(n == name for n, _ in fields):
                raise CompileError(f"duplicate record field '{name}'", span)
            fields.append((name, ty))
        return Type("record", fields=tuple(fields))

    # -- statements
    def block(self, meta, stmts):
        return tuple(stmts)

    def let_stmt(self, meta, children):
        name, value = children
        return A.Let(name=self._name(name), value=value, span=self._span(meta), name_span=_tok_span(self.file, name))

    def assign_stmt(self, meta, children):
        name, value = children
        return A.Assign(name=self._name(name), value=value, span=self._span(meta), name_span=_tok_span(self.file, name))

    def return_stmt(self, meta, children):
        return A.Return(value=children[0], span=self._span(meta))

    def for_stmt(self, meta, children):
        var, start, stop, body = children
        return A.For(
            var=self._name(var), start=start, stop=stop, body=body, span=self._span(meta), var_span=_tok_span(self.file, var)
        )

    def loop_stmt(self, meta, children):
        bound, body = children
        return A.LoopMax(bound=bound, body=body, span=self._span(meta))

    def break_stmt(self, meta, children):
        return A.BreakIf(cond=children[0], span=self._span(meta))

    # -- expressions
    def _binop(self, children, op):
        left, right = children
        return A.BinOp(op=op, left=left, right=right, span=_join(left.span, right.span))

    def or_(self, meta, children):
        return self._binop(children, "or")

    def and_(self, meta, children):
        return self._binop(children, "and")

    def add(self, meta, children):
        return self._binop(children, "add")

    def not_(self, meta, children):
        return A.Not(operand=children[0], span=self._span(meta))

    _CMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}

    def compare(self, meta, children):
        left, op, right = children
        return A.BinOp(op=self._CMP[str(op)], left=left, right=right, span=self._span(meta))

    def call(self, meta, children):
        func, *args = children
        args = [a for a in args if a is not None]
        if not isinstance(func, A.Name):
            raise CompileError("only a declared llm or function can be called, by its name", func.span)
        return A.Call(func=func.id, args=tuple(args), span=self._span(meta), func_span=func.span)

    def field(self, meta, children):
        value, name = children
        return A.Field(value=value, name=str(name), span=self._span(meta))

    def index(self, meta, children):
        value, idx = children
        return A.Index(value=value, index=idx, span=self._span(meta))

    def name(self, meta, children):
        tok = children[0]
        return A.Name(id=str(tok), span=_tok_span(self.file, tok))

    def string_lit(self, meta, children):
        tok = children[0]
        return A.Literal(value=decode_string(str(tok)), span=_tok_span(self.file, tok))

    def int_lit(self, meta, children):
        tok = children[0]
        return A.Literal(value=int(str(tok)), span=_tok_span(self.file, tok))

    def float_lit(self, meta, children):
        tok = children[0]
        return A.Literal(value=float(str(tok)), span=_tok_span(self.file, tok))

    def true_lit(self, meta, children):
        return A.Literal(value=True, span=self._span(meta))

    def false_lit(self, meta, children):
        return A.Literal(value=False, span=self._span(meta))

    def list_lit(self, meta, children):
        return A.ListExpr(items=tuple(c for c in children if c is not None), span=self._span(meta))


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)
