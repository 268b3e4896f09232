"""The compiler driver: source text -> parse -> lower -> passes -> `Program`.

    from promptc.compiler import compile_file
    program = compile_file("examples/trec/trec.pflow")

Every error is a `CompileError` that carries the source text, so `err.render()` prints
`FILE:LINE:COL: error: MESSAGE`, the line and a caret. Hostile input is bounded up front
(`promptc.frontend.limits`: encoding, nesting depth; the unroll pass: program size), so
every input compiles or fails with a located error in bounded time and memory.
"""

from __future__ import annotations

from pathlib import Path

from promptc.errors import CompileError, Span
from promptc.frontend.limits import check_text, decode_source, strip_bom
from promptc.frontend.lower import lower
from promptc.frontend.parser import parse
from promptc.ir import Program


def compile_source(text: str, file: str = "<string>", *, until: str | None = None) -> Program:
    """Compile `.pflow` source text; `file` names it in errors and resolves `use "path"`.

    `until` stops the pipeline after the named pass (see `promptc.passes.pipeline`).
    A leading byte-order mark is ignored.
    """
    text = strip_bom(text)
    try:
        check_text(text, file)
        program = lower(parse(text, file))
        return run_passes(program, until=until)
    except CompileError as e:
        raise e.with_source(text, file)
    except RecursionError:  # a safety net: `limits.check_depth` keeps inputs far from this
        raise CompileError("the workflow is nested too deeply to compile", Span(file, 1, 1), text) from None


def compile_file(path: str | Path, *, until: str | None = None) -> Program:
    """Compile a `.pflow` file (its path, as given, is `Program.file`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CompileError(f"cannot read '{path}': {e.strerror or e}", None) from None
    return compile_source(decode_source(data, str(path)), str(path), until=until)


def run_passes(program: Program, until: str | None = None) -> Program:
    """Run the pass pipeline on a lowered program (the frontends share this)."""
    try:
        from promptc.passes.pipeline import run_pipeline
    except ModuleNotFoundError as e:  # the passes are not built yet: the lowered program
        if e.name not in ("promptc.passes.pipeline",):
            raise
        return program
    return run_pipeline(program, until=until)


__all__ = ["compile_source", "compile_file", "run_passes"]
