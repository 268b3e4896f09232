"""The compiler passes, in order, and the driver that runs them.

Each pass is a function `Program -> Program` that appends its name to `Program.passes`.
`run_pipeline` runs them in order and verifies the IR after each (`promptc.verify`,
linear, so checking after every pass stays cheap).

Passes read no file and import no module. What a program `use`s reaches them through a
`Loader` the compile driver gives (`promptc.compiler.Loader`): `workflow(fn, program)`,
the workflow a `use` imports (for `inline`), and `functions(program)`, the program's
Python functions bound or read (for `resolve` and `typecheck`).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from promptc.bind import FunctionTable
from promptc.ir import Function, Program
from promptc.passes.dce import dce
from promptc.passes.gradient import gradient
from promptc.passes.inline import Loaded, inline
from promptc.passes.peers import peers
from promptc.passes.resolve import resolve
from promptc.passes.typecheck import typecheck
from promptc.passes.unroll import unroll
from promptc.verify import verify

log = logging.getLogger(__name__)

class Loader(Protocol):
    def workflow(self, fn: Function, program: Program) -> Loaded | None: ...

    def functions(self, program: Program) -> FunctionTable: ...


def pipeline(loader: Loader) -> tuple[tuple[str, Callable[[Program], Program]], ...]:
    """The passes in order, each a function `Program -> Program` (given what it loads)."""
    return (
        ("inline", lambda p: inline(p, loader.workflow)),
        ("resolve", lambda p: resolve(p, loader.functions(p))),
        ("typecheck", lambda p: typecheck(p, loader.functions(p))),
        ("unroll", unroll),
        ("dce", dce),
        ("peers", peers),
        ("gradient", gradient),
    )


PASS_NAMES = ("inline", "resolve", "typecheck", "unroll", "dce", "peers", "gradient")


def run_pipeline(
    program: Program, until: str | None = None, *, loader: Loader, check: bool = True, timings: dict | None = None
) -> Program:
    """Run the passes in order, stopping after the pass named `until` (None: all).

    `check` verifies the IR after each pass; `timings`, when given, receives the seconds
    spent per pass (the benchmark uses it).
    """
    if until is not None and until not in PASS_NAMES:
        raise ValueError(f"unknown pass '{until}' (passes: {', '.join(PASS_NAMES)})")
    for name, fn in pipeline(loader):
        t0 = time.perf_counter()
        program = fn(program)
        t1 = time.perf_counter()
        if check:
            verify(program)
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + (t1 - t0)
            timings["verify"] = timings.get("verify", 0.0) + (time.perf_counter() - t1)
        log.debug("pass %s: %d nodes, %.1f ms", name, len(program.workflow.nodes), (t1 - t0) * 1e3)
        if name == until:
            break
    return program


assert tuple(name for name, _ in pipeline(None)) == PASS_NAMES  # type: ignore[arg-type]
