"""The parser's actions as lark calls them: the declarations' and the body's actions joined
into one object, each wrapped to keep the first `CompileError` it raises.

The AST is built while the LALR parser reduces (lark's inline `transformer=`), not by a
second pass over a parse tree: no tree, no per-node meta bookkeeping. Lark keeps every
token in the children (`keep_all_tokens`), so each action sees the keywords and brackets
of its rule and knows its extent: a rule's span runs from the start of its first token
to the end of its last one, which is what `propagate_positions` used to give the tree.
A rule's value is a `Reduced` carrying that extent; `( expr )` passes the inner value on
with the extent of the parentheses, so an enclosing rule's span includes them while the
inner expression keeps its own span.

The first `CompileError` an action raises is kept (in `state.error`) and raised after
the parse: a syntax error anywhere in the file wins over it, and among actions the first
in reduction order (children before parents, left to right) wins, as with a transform
after the parse.
"""

from __future__ import annotations

from typing import Any, Callable

from promptc.errors import CompileError
from promptc.frontend.parse_body import BodyActions
from promptc.frontend.parse_decls import DeclActions
from promptc.frontend.parse_reduce import ActionBase, ParseState


class Actions(DeclActions, BodyActions):
    """Every action of the grammar; `names()` lists them, `callbacks()` wraps them for lark."""

    def names(self) -> list[str]:
        """The rules and aliases that have an action."""
        helpers = set(dir(ActionBase)) | {"names", "callbacks"}
        return [n for n in dir(type(self)) if not n.startswith("_") and n not in helpers]

    def callbacks(self) -> Any:
        """The actions as lark calls them (an object with one attribute per rule), each
        wrapped to keep the first `CompileError`."""
        ns = type("Callbacks", (), {})()
        for name in self.names():
            setattr(ns, name, _guarded(getattr(self, name), self.state))
        return ns


def _guarded(action: Callable[[list], Any], state: ParseState) -> Callable[[list], Any]:
    def callback(children: list) -> Any:
        if state.error is not None:
            return None  # an earlier action failed: the rest of the parse only looks for syntax errors
        try:
            return action(children)
        except CompileError as e:
            state.error = e
            return None

    callback.__name__ = action.__name__
    return callback
