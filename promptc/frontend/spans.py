"""`strip_spans(program)`: a program without its source locations, for comparing IR.

Two frontends (a `.pflow` file and a decorated Python function) that mean the same
workflow give programs equal up to spans, `file` and `source_hash`; this makes that a
plain `==`.
"""

from __future__ import annotations

from typing import Any

import attrs

from promptc.ir import Program


def strip_spans(program: Program) -> Program:
    """The program with every `span` set to None and `file`/`source_hash` emptied."""
    out = _strip(program)
    return attrs.evolve(out, file="", source_hash="")


def _strip(x: Any) -> Any:
    if attrs.has(type(x)):
        changes = {}
        for f in attrs.fields(type(x)):
            v = getattr(x, f.name)
            nv = None if f.name in ("span", "output_span", "brk_span") else () if f.name == "update_spans" else _strip(v)
            if nv is not v:
                changes[f.name] = nv
        return attrs.evolve(x, **changes) if changes else x
    if isinstance(x, tuple):
        items = tuple(_strip(v) for v in x)
        return items if any(a is not b for a, b in zip(items, x)) else x
    return x
