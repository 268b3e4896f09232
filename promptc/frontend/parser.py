"""`.pflow` text -> AST (`promptc.frontend.ast`), with spans and human parse errors.

The syntax lives in `grammar/pflow.lark` only; this module builds the LALR parser once per
process (lark's on-disk grammar cache is not used: it loads a pickle), runs a small
post-lexer that decides which newlines separate statements, and builds the AST records as
the parser reduces (no parse tree: the actions are `parse_actions`, declarations and
types, and `parse_body`, statements and expressions). Every lark error becomes a located
`CompileError` ("unexpected 'x', expected one of ...", `parse_errors`); a lark traceback
never escapes.
"""


from __future__ import annotations

import functools
import gc
import re
import threading
from importlib import resources
from typing import Iterator

from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from promptc.errors import CompileError
from promptc.frontend import ast as A
from promptc.frontend.parse_actions import _ACTIONS, MAX_DEMOS, RESERVED, decode_string
from promptc.frontend.parse_errors import parse_error

__all__ = ["parse", "decode_string", "KEYWORDS", "MAX_DEMOS", "RESERVED"]

KEYWORDS = frozenset(
    "use model param llm workflow train let for in loop max break if else return via and or not "
    "true false env trainable prompt demos enum system user assistant".split()
)
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
    assert not missing, f"grammar rules without an action in parse_actions.py or parse_body.py: {sorted(missing)}"
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
            raise parse_error(e, source, file, getattr(_POSTLEX._local, "opened", None)) from None
        finally:
            error, state.error = state.error, None
            if gc_was_on:
                gc.enable()
        if error is not None:
            raise error
    except CompileError as e:
        raise e.with_source(source)
    return A.Module(items=tuple(items), file=file, source=source)
