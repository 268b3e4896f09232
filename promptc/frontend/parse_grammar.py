"""The grammar of `.pflow` text as lark builds it: `grammar/pflow.lark` (the only
definition of the syntax), the LALR tables and contextual lexer lark makes from it, and
the post-lexer that decides which newlines separate statements.

lark's on-disk grammar cache is not used (it loads a pickle): building the tables takes
well under 0.1 s, once per process (`promptc.frontend.parser` keeps the result).
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from typing import Any, Iterable, Iterator

from lark import Lark, Token

# Words with a meaning in the grammar (a name may still be one where RESERVED allows it).
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
    "backward optimizer supports".split()
)
# ... and so does a newline before one of these (checked on the text that follows: the
# contextual lexer cannot be asked for a token ahead of the parser).
_CONTINUE_BEFORE = re.compile(r"(?:\s|#[^\n]*)*(?:$|[{})\],=+.<>!]|->|(?:and|or|via|else)(?![A-Za-z0-9_]))")


def _is_op(tok: Token, table: frozenset[str]) -> bool:
    return tok.type not in _VALUE_TOKENS and str(tok) in table


class Separators:
    """Turns newlines and ';' into one `_NL` token where they end a statement, drops the rest.

    The source text is set by `start()` (per thread) so that a newline can be judged by
    what follows it; `unclosed()` gives the brackets left open where the stream stopped.
    """

    always_accept = ("_NL", "SEMI")

    def __init__(self) -> None:
        self._local = threading.local()

    def start(self, source: str) -> None:
        self._local.source = source
        self._local.opened = []

    def unclosed(self) -> list[Token]:
        return getattr(self._local, "opened", [])

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


def build(callbacks: Any, actions: Iterable[str], postlex: "Separators") -> Lark:
    """The LALR parser of `grammar/pflow.lark` whose reductions call `callbacks` (an object
    with one attribute per rule, named in `actions`): the AST is built during the parse."""
    text = resources.files("promptc.grammar").joinpath("pflow.lark").read_text(encoding="utf-8")
    parser = Lark(
        text,
        parser="lalr",
        lexer="contextual",
        postlex=postlex,
        maybe_placeholders=True,
        keep_all_tokens=True,  # the actions see every token of their rule: that is how they know its span
        transformer=callbacks,
    )
    missing = {r.alias or r.origin.name for r in parser.rules} - set(actions)
    missing = {m for m in missing if not m.startswith("_") and not _passes_through(parser, m)}
    assert not missing, f"grammar rules without an action in parse_decls.py or parse_body.py: {sorted(missing)}"
    return parser


def _passes_through(parser: Lark, name: str) -> bool:
    """`?rule` alternatives of one symbol hand their child on without an action."""
    return all(
        r.options.expand1 and len(r.expansion) == 1 for r in parser.rules if r.alias is None and r.origin.name == name
    )
