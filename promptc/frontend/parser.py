"""`.pflow` text -> AST (`promptc.frontend.ast`), with spans and human parse errors.

The parser's modules, one job each, importing downward only:

- `parse_grammar`: `grammar/pflow.lark` (the only definition of the syntax) built into
  lark's LALR tables and contextual lexer, and the post-lexer that decides which newlines
  separate statements;
- `parse_lalr`: a fast loop over those tables (lark's own loop is the reference, run
  again for the error when the fast one refuses a token);
- `parse_actions`: the AST records built as the parser reduces (no parse tree), from
  `parse_decls` (declarations and types) and `parse_body` (statements and expressions),
  on `parse_reduce` (what every action shares) and `parse_values` (literals, extents);
- `parse_errors`: a lark exception -> a located `CompileError` ("unexpected 'x',
  expected one of ..."); a lark traceback never escapes.

This module builds them once per process and runs one parse.
"""

from __future__ import annotations

import functools
import gc
import logging

from lark import Lark
from lark.exceptions import UnexpectedInput

from promptc.errors import CompileError
from promptc.frontend import ast as A
from promptc.frontend.parse_actions import Actions
from promptc.frontend.parse_decls import MAX_DEMOS
from promptc.frontend.parse_errors import parse_error, terminal_words
from promptc.frontend.parse_grammar import KEYWORDS, Separators, build
from promptc.frontend.parse_lalr import Driver, Refused
from promptc.frontend.parse_reduce import RESERVED
from promptc.frontend.parse_values import decode_string

__all__ = ["parse", "decode_string", "KEYWORDS", "MAX_DEMOS", "RESERVED"]

log = logging.getLogger(__name__)

_ACTIONS = Actions()
_POSTLEX = Separators()


class _Parser:
    """lark's parser of the grammar (the reference), the fast driver over its tables, and
    the words its error messages use."""

    def __init__(self) -> None:
        self.lark: Lark = build(_ACTIONS.callbacks(), _ACTIONS.names(), _POSTLEX)
        self.words = terminal_words(self.lark.terminals)
        self.driver: Driver | None = None
        try:
            self.driver = Driver(self.lark)
        except (AttributeError, AssertionError, KeyError, TypeError, ValueError) as e:
            # the driver reads lark's tables and lexers: a lark that lays them out otherwise
            # is still a working parser, only a slower one
            log.warning("the fast parser loop cannot read this lark's tables (%s); using lark's own", e)


@functools.lru_cache(maxsize=1)
def _parser() -> _Parser:
    return _Parser()


def parse(source: str, file: str = "<string>") -> A.Module:
    """Parse `.pflow` text into a `Module`; every error is a `CompileError` carrying `source`."""
    parser = _parser()
    state = _ACTIONS.state
    state.file = file
    state.error = None
    # The parse allocates many small objects that all stay alive: the cyclic GC would only
    # rescan them (a third of the time of a 10,000-line file). It is paused, not skipped:
    # it runs again as usual once the parse returns.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        try:
            items = _run(parser, source, file)
        finally:
            error, state.error = state.error, None
            if gc_was_on:
                gc.enable()
        if error is not None:
            raise error
    except CompileError as e:
        raise e.with_source(source)
    return A.Module(items=tuple(items), file=file, source=source)


def _run(parser: _Parser, source: str, file: str) -> list:
    if parser.driver is not None:
        _POSTLEX.start(source)
        try:
            return parser.driver.run(source)
        except Refused:
            pass
    # Not in the language: lark's own parse of the same text gives the error to describe.
    _ACTIONS.state.error = None
    _POSTLEX.start(source)
    try:
        return parser.lark.parse(source)
    except UnexpectedInput as e:
        raise parse_error(e, source, file, parser.words, _POSTLEX.unclosed()) from None
