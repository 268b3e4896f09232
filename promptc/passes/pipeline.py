"""The compiler passes, in order, and the driver that runs them.

Each pass is a function `Program -> Program` that appends its name to `Program.passes`.
`run_pipeline` runs them in order and verifies the IR after each (`promptc.verify`,
linear, so checking after every pass stays cheap).
"""

from __future__ import annotations

import logging
import time

from promptc.ir import Program
from promptc.passes.dce import dce
from promptc.passes.gradient import gradient
from promptc.passes.inline import inline
from promptc.passes.peers import peers
from promptc.passes.resolve import resolve
from promptc.passes.typecheck import typecheck
from promptc.passes.unroll import unroll
from promptc.verify import verify

log = logging.getLogger(__name__)

PIPELINE = (
    ("inline", inline),
    ("resolve", resolve),
    ("typecheck", typecheck),
    ("unroll", unroll),
    ("dce", dce),
    ("peers", peers),
    ("gradient", gradient),
)

PASS_NAMES = tuple(name for name, _ in PIPELINE)


def run_pipeline(program: Program, until: str | None = None, *, check: bool = True, timings: dict | None = None) -> Program:
    """Run the passes in order, stopping after the pass named `until` (None: all).

    `check` verifies the IR after each pass; `timings`, when given, receives the seconds
    spent per pass (the benchmark uses it).
    """
    if until is not None and until not in PASS_NAMES:
        raise ValueError(f"unknown pass '{until}' (passes: {', '.join(PASS_NAMES)})")
    for name, fn in PIPELINE:
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
