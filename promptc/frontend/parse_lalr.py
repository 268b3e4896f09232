"""A fast LALR(1) loop over the tables and lexers lark built for `grammar/pflow.lark`.

lark's own loop spends most of a parse on bookkeeping: rules are dictionary keys hashed
and compared in Python, every `?rule` that hands its single child on (seven of them
between a name and an `expr`) is a call, and each token goes through a lexer object,
a line counter and a lexer thread. `Driver` runs the same automaton from the same
tables (shift, reduce, goto; lark's callbacks for every reduction that builds something;
the contextual lexer's scanner for the parser's current state; the post-lexer in
between), with those costs taken out: on a 10,000-line file it parses about twice as
fast as `Lark.parse` (0.3 s against 0.6 s of CPU on the benchmark's chain).

It only ever parses text lark accepts: at the first token the tables or the lexer refuse,
`run` raises `Refused` and the caller parses again with `Lark.parse`, whose exception
(expected tokens, lexer context, interactive state) is the reference for the error
message. The driver never has to reproduce lark's errors.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

from lark import Lark, Token
from lark.lexer import PatternStr, UnlessCallback
from lark.parsers.lalr_analysis import Shift


class Refused(Exception):
    """The text is not in the language (or not at this point): ask lark for the error."""


# A reduction: (number of children, the symbol it reduces to, the callback or None when the
# rule passes its single child on unchanged). A shift is the next state, an int.
_Reduce = tuple[int, str, "Callable[[list], Any] | None"]


class _Lexer:
    """One state's scanner: lark's terminals for that state, in lark's order, as one regex;
    lark's keyword check of a NAME (its `UnlessCallback`) as a dict lookup."""

    __slots__ = ("match", "keywords", "newlines", "ignore")

    def __init__(self, basic: Any) -> None:
        scanner = basic.scanner  # built on first use; it also fills `basic.callback`
        pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanner.terminals)
        self.match = re.compile(pattern, basic.g_regex_flags).match
        self.keywords: dict[str, dict[str, str]] = {}
        for kind, cb in basic.callback.items():
            words = getattr(cb, "scanner", None)
            assert isinstance(cb, UnlessCallback) and words is not None, f"unexpected lexer callback for {kind}"
            assert all(isinstance(t.pattern, PatternStr) and not t.pattern.flags for t in words.terminals)
            self.keywords[kind] = {t.pattern.value: t.name for t in words.terminals}
        self.newlines: frozenset[str] = basic.newline_types
        self.ignore: frozenset[str] = basic.ignore_types


class Driver:
    """The tables of one `Lark` instance (LALR, contextual lexer, a post-lexer), ready to run."""

    def __init__(self, lark: Lark) -> None:
        frontend = lark.parser
        parser = frontend.parser.parser  # lark's LALR loop: its table and callbacks
        table = parser.parse_table
        callbacks = parser.callbacks
        (self.start,) = table.start_states.values()
        (self.end,) = table.end_states.values()
        self.postlex = frontend.lexer.postlexer
        self.lexers = {state: _Lexer(basic) for state, basic in frontend.lexer.lexer.lexers.items()}
        assert not any(t.isupper() for t in callbacks if isinstance(t, str)), "no terminal callbacks"
        reductions: dict[int, _Reduce] = {}
        self.states: dict[int, dict[str, int | _Reduce]] = {}
        for state, row in table.states.items():
            out: dict[str, int | _Reduce] = {}
            for sym, (action, arg) in row.items():
                sym = str(sym)  # lark's names are Tokens: compared in Python, not as plain str
                if action is Shift:
                    out[sym] = arg
                    continue
                found = reductions.get(id(arg))
                if found is None:
                    cb = callbacks[arg]
                    found = reductions[id(arg)] = (len(arg.expansion), str(arg.origin.name), None if _passes_child(arg, cb) else cb)
                out[sym] = found
            self.states[state] = out
        self.units: dict[tuple[int, int, str], int] = {}  # filled by `_through` as met

    def run(self, text: str) -> Any:
        """The value of the start rule for `text`; `Refused` where lark would raise."""
        states = self.states
        units = self.units
        stack = [self.start]
        out: list[Any] = []
        for tok in self.postlex.process(self._tokens(text, stack)):
            kind = tok.type
            while True:
                act = states[stack[-1]].get(kind)
                if act is None:
                    raise Refused
                if act.__class__ is int:
                    stack.append(act)
                    out.append(tok)
                    break
                size, origin, cb = act
                if cb is None:  # a chain of pass-through rules: the value stays, the state moves
                    key = (stack[-2], stack[-1], kind)
                    top = units.get(key)
                    stack[-1] = top if top is not None else self._through(key)
                    continue
                if size:
                    children = out[-size:]
                    del out[-size:]
                    del stack[-size:]
                    out.append(cb(children))
                else:
                    out.append(cb([]))
                stack.append(states[stack[-1]][origin])
        return self._finish(stack, out)

    def _through(self, key: tuple[int, int, str]) -> int:
        """The state after every pass-through reduction that `kind` triggers on top of
        `below, top` (each pops one state and goes to a new one from `below`): a name in
        an expression goes through seven of them."""
        below, top, kind = key
        while True:
            act = self.states[top].get(kind)
            if act is None or act.__class__ is int or act[2] is not None:
                self.units[key] = top
                return top
            top = self.states[below][act[1]]

    def _finish(self, stack: list[int], out: list[Any]) -> Any:
        states, end = self.states, self.end
        while True:
            act = states[stack[-1]].get("$END")
            if act is None or act.__class__ is int:
                raise Refused
            size, origin, cb = act
            if cb is None:
                del stack[-1]
            elif size:
                children = out[-size:]
                del out[-size:]
                del stack[-size:]
                out.append(cb(children))
            else:
                out.append(cb([]))
            stack.append(states[stack[-1]][origin])
            if stack[-1] == end:
                return out[-1]

    def _tokens(self, text: str, stack: list[int]) -> Iterator[Token]:
        """lark's contextual lexer: the scanner of the parser's state when each token starts."""
        lexers = self.lexers
        new = str.__new__
        end = len(text)
        pos = 0
        line = 1
        line_start = 0
        while pos < end:
            lx = lexers[stack[-1]]
            m = lx.match(text, pos)
            if m is None:
                raise Refused
            kind = m.lastgroup
            value = m.group()
            start, first_line, column = pos, line, pos - line_start + 1
            pos = m.end()
            if kind in lx.newlines:
                k = value.count("\n")
                if k:
                    line += k
                    line_start = start + value.rindex("\n") + 1
            if kind in lx.ignore:
                continue
            words = lx.keywords.get(kind)
            if words is not None:
                kind = words.get(value, kind)
            tok = new(Token, value)  # what Token(...) makes, without its argument checks
            tok.type = kind
            tok.value = value
            tok.start_pos = start
            tok.line = first_line
            tok.column = column
            tok.end_line = line
            tok.end_column = pos - line_start + 1
            tok.end_pos = pos
            yield tok


def _passes_child(rule: Any, callback: Callable[[list], Any]) -> bool:
    """Whether lark's callback for `rule` returns its single child unchanged (a `?rule`
    alternative of one symbol): checked by calling it, not assumed."""
    if rule.alias is not None or not rule.options.expand1 or len(rule.expansion) != 1:
        return False
    probe = object()
    try:
        return callback([probe]) is probe
    except Exception:  # an action that builds something: not a pass-through
        return False
