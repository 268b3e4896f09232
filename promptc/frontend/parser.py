"""`.pflow` text -> AST (`promptc.frontend.ast`), with spans and human parse errors.

The syntax lives in `grammar/pflow.lark` only; this module builds the LALR parser once per
process (lark's on-disk grammar cache is not used: it loads a pickle), runs a small
post-lexer that decides which newlines separate statements, and builds the AST records as
the parser reduces (no parse tree). Every lark error becomes a located `CompileError` ("unexpected 'x', expected one of ..."); a lark traceback never escapes.
"""

from __future__ import annotations

import difflib
import functools
import gc
import math
import re
import textwrap
import threading
from importlib import resources
from typing import Any, Iterator

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.frontend import template as T
from promptc.ir import MODEL_OPTIONS, check_model_option
from promptc.types import SCALARS, Type, list_of

KEYWORDS = frozenset(
    "use model param llm workflow train let for in loop max break if else return via and or not "
    "true false env trainable prompt demos enum system user assistant".split()
)
# The largest `demos(max = K)`: every demo is sent with every call of its llm.
MAX_DEMOS = 10_000
# Words that can never be the name of a declaration or a variable.
RESERVED = frozenset("use model param llm workflow train let for in loop break if else return via and or not true false".split())

# ---- the post-lexer: which newlines are separators ---------------------------------------

_VALUE_TOKENS = frozenset({"NAME", "STRING", "LONG_STRING", "INT", "FLOAT"})
# A newline after one of these continues the construct ...
_CONTINUE_AFTER = frozenset(
    "{ ( [ , = + == != < <= > >= and or not -> : . .. via in max as use model param llm workflow "
    "train let for loop break if else return system user assistant demos metric answer teacher "
    "backward optimizer".split()
)
# ... and so does a newline before one of these (checked on the text that follows: the
# contextual lexer cannot be asked for a token ahead of the parser).
_CONTINUE_BEFORE = re.compile(r"(?:\s|#[^\n]*)*(?:$|[{})\],=+.<>!]|->|(?:and|or|via|else)(?![A-Za-z0-9_]))")


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
    parser = Lark(
        text,
        parser="lalr",
        lexer="contextual",
        postlex=_POSTLEX,
        maybe_placeholders=True,
        keep_all_tokens=True,  # the actions see every token of their rule: that is how they know its span
        transformer=_ACTIONS.callbacks(),  # the AST is built during the parse
    )
    missing = {r.alias or r.origin.name for r in parser.rules} - set(_ACTIONS.names())
    missing = {m for m in missing if not m.startswith("_") and not _passes_through(parser, m)}
    assert not missing, f"grammar rules without an action in parser.py: {sorted(missing)}"
    return parser


def _passes_through(parser: Lark, name: str) -> bool:
    """`?rule` alternatives of one symbol hand their child on without an action."""
    return all(
        r.options.expand1 and len(r.expansion) == 1 for r in parser.rules if r.alias is None and r.origin.name == name
    )


def parse(source: str, file: str = "<string>") -> A.Module:
    """Parse `.pflow` text into a `Module`; every error is a `CompileError` carrying `source`."""
    parser = _lark()
    state = _ACTIONS._local
    state.file = file
    state.error = None
    # The parse allocates many small objects that all stay alive: the cyclic GC would only
    # rescan them (a third of the time of a 10,000-line file). It is paused, not skipped:
    # it runs again as usual once the parse returns.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        try:
            _POSTLEX._local.source = source
            items = parser.parse(source)
        except UnexpectedInput as e:
            raise _parse_error(e, source, file) from None
        finally:
            error, state.error = state.error, None
            if gc_was_on:
                gc.enable()
        if error is not None:
            raise error
    except CompileError as e:
        raise e.with_source(source)
    return A.Module(items=tuple(items), file=file, source=source)


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
    lines = source.rstrip().split("\n")  # lines as lark counts them: "\n" only
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


class _N:
    """A reduced rule's value and the extent of its tokens (same attribute names as `Token`)."""

    __slots__ = ("v", "line", "column", "end_line", "end_column")

    def __init__(self, v: Any, first: Any, last: Any):
        self.v = v
        self.line = first.line
        self.column = first.column
        self.end_line = last.end_line
        self.end_column = last.end_column


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


def _first(c: list) -> Any:
    for x in c:
        if x is not None:
            return x
    return None


def _last(c: list) -> Any:
    for x in reversed(c):
        if x is not None:
            return x
    return None


def _values(c: list) -> list:
    """The values of the sub-rules among `c` (tokens and missing optionals dropped)."""
    return [x.v for x in c if type(x) is _N]


class _Actions:
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


def _int(tok: Token, file: str) -> int:
    """An INT token's value; integers are 64-bit (they are saved in `.pfc` artifacts)."""
    text = str(tok)
    digits = text.lstrip("-").lstrip("0") or "0"
    # more than 19 digits is out of range; checked first, as int() refuses over 4,300 digits
    value = None if len(digits) > 19 else -int(digits) if text.startswith("-") else int(digits)
    if value is None or not -(2**63) <= value < 2**63:
        raise CompileError(f"integer {_short(text)} is out of range (integers are 64-bit)", _tok_span(file, tok))
    return value


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)


_ACTIONS = _Actions()
