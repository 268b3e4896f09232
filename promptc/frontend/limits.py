"""Input limits: what the compiler refuses up front, with a located error, so that every
input, however hostile, compiles or fails in bounded time and memory.

- **text** (`check_text`): a lone surrogate (possible in a `str` handed to
  `compile_source`, never in a decoded file) is located and refused: it cannot be hashed,
  saved or sent to a model. A leading UTF-8 byte-order mark is dropped (`strip_bom`).
- **bytes** (`decode_source`): a file that is not UTF-8 is refused at the line and column
  of its first bad byte.
- **nesting** (`check_depth`): the AST may nest at most `MAX_DEPTH` (100) levels, counting
  each expression, statement, declaration and type inside another. The later stages
  (lowering, the passes, printing, saving) walk nested structures recursively; this bound
  keeps them far from Python's recursion limit. A chain `a + b + c + ...` nests one level
  per operand. The check is an explicit-stack walk, linear in the size of the AST.

The size of the *unrolled* program is bounded by the unroll pass (`promptc.passes.unroll`),
before it copies anything; integer literals are range-checked by the parser.
"""

from __future__ import annotations

import gc
import re
from typing import Any

import attrs

from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.types import Type

MAX_DEPTH = 100

_SURROGATE = re.compile("[\ud800-\udfff]")


def strip_bom(text: str) -> str:
    """`text` without a leading byte-order mark (editors on Windows write one)."""
    return text[1:] if text.startswith("\ufeff") else text


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of `text[index]`, counting lines on `\\n` only (as lark does)."""
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def check_text(text: str, file: str) -> None:
    m = _SURROGATE.search(text)
    if m is not None:
        line, col = _position(text, m.start())
        raise CompileError(
            f"invalid character U+{ord(m.group()):04X} (a lone surrogate is not text)",
            Span(file, line, col, line, col + 1),
            text.encode("utf-8", "replace").decode("utf-8"),
        )


def decode_source(data: bytes, file: str) -> str:
    """UTF-8 bytes to text (a BOM is dropped); bad bytes are a located `CompileError`."""
    try:
        return strip_bom(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        shown = data.decode("utf-8", "replace")
        before = data[: e.start].decode("utf-8", "replace")
        line, col = _position(before, len(before))
        if data.startswith(b"\xef\xbb\xbf") and line == 1:
            col -= 1  # the BOM is not a column
            shown = shown[1:]
        raise CompileError(
            f"invalid UTF-8 byte 0x{data[e.start]:02X} (a .pflow file is UTF-8 text)",
            Span(file, line, col, line, col + 1),
            shown,
        ) from None


_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    """The fields of a record class that may hold nested records (spans excluded); () for leaves."""
    names = _FIELDS.get(cls)
    if names is None:
        names = ()
        if attrs.has(cls) and cls is not Span:
            names = tuple(f.name for f in attrs.fields(cls) if not f.name.endswith("span"))
        _FIELDS[cls] = names
    return names


def check_depth(module: A.Module, limit: int = MAX_DEPTH) -> None:
    """Raise a located `CompileError` at the first construct nested deeper than `limit`."""
    gc_was_on = gc.isenabled()
    gc.disable()  # the walk only reads the AST: the cyclic GC would rescan it for nothing
    try:
        _walk(module, limit)
    finally:
        if gc_was_on:
            gc.enable()


def _walk(module: A.Module, limit: int) -> None:
    # (record, its depth, the span of the nearest located ancestor)
    stack: list[tuple[Any, int, Span | None]] = [(item, 1, None) for item in module.items]
    pop, push = stack.pop, stack.append
    known = _FIELDS.get  # `_fields`, without a call for the classes already seen (the hot path)
    while stack:
        obj, depth, near = pop()
        span = getattr(obj, "span", None) or near
        for name in _fields(type(obj)):
            value = getattr(obj, name)
            for x in value if type(value) is tuple else (value,):
                for y in x if type(x) is tuple else (x,):  # tuples of tuples: a record type's (name, Type) pairs
                    f = known(type(y))
                    if f is None:
                        f = _fields(type(y))
                    if f:
                        if depth >= limit:  # report the construct at the limit, not its leaf
                            raise CompileError(_too_deep(obj, limit), span)
                        push((y, depth + 1, span))


_STATEMENTS = (A.Let, A.Assign, A.Return, A.For, A.ForEach, A.LoopMax, A.BreakIf, A.If)


def _too_deep(obj: Any, limit: int) -> str:
    what = "the type" if isinstance(obj, Type) else "the statement" if isinstance(obj, _STATEMENTS) else "the expression"
    hint = ""
    if isinstance(obj, A.BinOp):
        hint = "; a chain `a + b + ...` nests one level per operand: build it in several `let` steps"
    return f"{what} is nested too deeply (more than {limit} levels){hint}"
