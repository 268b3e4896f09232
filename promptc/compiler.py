"""The compile driver: source -> parse -> lower -> passes -> `Program`.

    from promptc.compiler import compile_file
    program = compile_file("examples/trec/trec.pflow")

The passes (promptc.passes) rewrite IR and never read a file or import a module: this
driver does both for them, through a `Loader` it hands to the pipeline —

- `use "x.pflow" { w }`: the file is read and decoded exactly like a top-level source
  (byte-order mark, encoding, limits), parsed and lowered, and the inline pass copies it;
- `use "x.py" { w }` of a `@promptc.workflow` function: the module is imported and the
  function's module lowered (`promptc.frontend.py_module`);
- the Python functions a program `use`s: bound once (`promptc.bind.bind_program`) for the
  resolve and type-check passes. With `trust_code=False` (the language server on an
  untrusted workspace) no user module is imported: their signatures are read from the
  source with `ast` (`promptc.frontend.py_signatures`), and a `use "x.py"` of a decorated
  workflow is an error saying that checking it needs running the code.

Every error is a `CompileError` that carries the source text of the file it is in, so
`err.render()` prints `FILE:LINE:COL: error: MESSAGE`, the line and a caret. Hostile input
is bounded up front (`promptc.frontend.limits`: encoding, nesting depth; the inline and
unroll passes: program size), so every input compiles or fails with a located error in
bounded time and memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from attrs import evolve

from promptc.bind import BindError, Bound, FunctionTable, bind_program, search_path
from promptc.errors import CompileError, Span
from promptc.frontend.limits import check_text, decode_source, strip_bom
from promptc.frontend.lower import lower
from promptc.frontend.parser import parse
from promptc.frontend.py_module import DecoratedFunction
from promptc.frontend.py_signatures import read_file
from promptc.ir import Function, Program
from promptc.passes.inline import Loaded, base_dir
from promptc.passes.pipeline import run_pipeline


def compile_source(
    text: str, file: str = "<string>", *, until: str | None = None, trust_code: bool = True
) -> Program:
    """Compile `.pflow` source text; `file` names it in errors and resolves `use "path"`.

    `until` stops the pipeline after the named pass (see `promptc.passes.pipeline`).
    `trust_code=False` imports no user Python (see the module docstring).
    A leading byte-order mark is ignored.
    """
    loader = Loader(trust_code=trust_code)
    return loader.compile_text(strip_bom(text), file, until=until)


def compile_file(path: str | Path, *, until: str | None = None, trust_code: bool = True) -> Program:
    """Compile a `.pflow` file (its path, as given, is `Program.file`)."""
    try:
        data = Path(path).read_bytes()
    except (OSError, ValueError) as e:
        raise CompileError(f"cannot read '{path}': {_reason(e)}", None) from None
    return compile_source(decode_source(data, str(path)), str(path), until=until, trust_code=trust_code)


def run_passes(program: Program, until: str | None = None, *, trust_code: bool = True) -> Program:
    """Run the pass pipeline on a lowered program (what a frontend gives)."""
    return Loader(trust_code=trust_code).passes(program, until=until)


def compile_decorated(fn: DecoratedFunction) -> Program:
    """The compiled program of a `@promptc.workflow` function."""
    module = fn.module_ast()
    loader = Loader()
    loader.sources[module.file] = module.source
    return loader.passes(lower(module), source=module.source)


class Loader:
    """What the passes may not do themselves: read and import what a program `use`s.

    One loader serves one compilation; `sources` keeps the text of every file it read,
    so an error inside an imported file shows that file's line and caret.
    """

    def __init__(self, *, trust_code: bool = True, search_dirs: Iterable[Any] = ()):
        self.trust_code = trust_code
        self.search_dirs = tuple(search_dirs)
        self.sources: dict[str, str] = {}
        self._tables: dict[tuple, FunctionTable] = {}  # resolve and typecheck ask for the same table

    # -- whole compilations ----------------------------------------------------------
    def compile_text(self, text: str, file: str, *, until: str | None = None) -> Program:
        self.sources[file] = text
        try:
            check_text(text, file)
            program = lower(parse(text, file))
        except CompileError as e:
            raise e.with_source(text, file)
        except RecursionError:  # a safety net: `limits.check_depth` keeps inputs far from this
            raise CompileError("the workflow is nested too deeply to compile", Span(file, 1, 1), text) from None
        return self.passes(program, until=until, source=text)

    def passes(self, program: Program, *, until: str | None = None, source: str | None = None) -> Program:
        try:
            return run_pipeline(program, until=until, loader=self)
        except CompileError as e:
            raise self._located(e, program.file, source)
        except RecursionError:
            raise CompileError(
                "the workflow is nested too deeply to compile", Span(program.file or "<string>", 1, 1), source
            ) from None

    def _located(self, e: CompileError, file: str | None, source: str | None) -> CompileError:
        where = e.span.file if e.span is not None else None
        if where in self.sources:
            return e.with_source(self.sources[where], where)
        return e.with_source(source, file) if source is not None else e

    # -- what the inline pass asks for -------------------------------------------------
    def workflow(self, fn: Function, program: Program) -> Loaded | None:
        """The lowered workflow `use "FILE" { fn }` imports (not yet inlined), with the key
        naming its source in an import chain; None when `fn` is a plain Python function."""
        if fn.module.endswith(".pflow"):
            return self._pflow(fn, program)
        if fn.module.endswith(".py"):
            return self._decorated(fn, program)
        return None

    def _pflow(self, fn: Function, program: Program) -> Loaded:
        base = base_dir(program)
        try:
            path = (base / fn.module).resolve()
            if not path.is_file():
                raise CompileError(f"cannot import '{fn.module}': no such file ({path})", fn.span)
            data = path.read_bytes()
        except (OSError, ValueError, RuntimeError) as e:  # NUL in the path, a symlink loop, unreadable
            raise CompileError(f"cannot import '{fn.module}': {_reason(e)}", fn.span) from None
        shown = _shown(path, program, base)
        text = strip_bom(decode_source(data, shown))
        self.sources[shown] = text
        try:
            check_text(text, shown)
            callee = lower(parse(text, shown))
        except CompileError as e:
            raise e.with_source(text, shown)
        return Loaded(str(path), callee)

    def _decorated(self, fn: Function, program: Program) -> Loaded | None:
        if not self.trust_code:
            return None  # read as a plain function; the language server says it was not run
        bound = self.functions(program).get(fn.name)
        if bound is None or not isinstance(bound.fn, DecoratedFunction):
            return None  # a plain function (the resolve pass reports one that does not bind)
        module = bound.fn.module_ast()
        self.sources[module.file] = module.source
        try:
            callee = lower(module)
        except CompileError as e:
            raise e.with_source(module.source, module.file)
        return Loaded(f"{Path(callee.file).resolve()}::{fn.attr}", callee)

    # -- what the resolve and type-check passes ask for ---------------------------------
    def functions(self, program: Program) -> FunctionTable:
        """The program's functions, bound (trusted) or read from their source (untrusted)."""
        key = (program.file, tuple((f.name, f.module, f.attr) for f in program.functions))
        if key not in self._tables:
            if self.trust_code:
                self._tables[key] = bind_program(program, self.search_dirs)
            else:
                self._tables[key] = _read_functions(program, self.search_dirs)
        return self._tables[key]


def _read_functions(program: Program, search_dirs: tuple[Any, ...]) -> FunctionTable:
    """The function table of an untrusted compilation: `std.` functions bound (promptc's
    own code), user functions typed from their source, never imported."""
    table = FunctionTable()
    dirs = search_path(program.file, search_dirs)
    signatures: dict[Path, dict] = {}
    for fn in program.functions:
        if fn.module.startswith("std."):
            std = bind_program(evolve(program, functions=(fn,)), search_dirs)
            table.bound.update(std.bound)
            table.errors.update(std.errors)
            continue
        path = next((Path(d) / fn.module for d in (*dirs, ".") if (Path(d) / fn.module).is_file()), None)
        if path is None:
            table.errors[fn.name] = f"cannot find module file '{fn.module}'"
            continue
        try:
            if path not in signatures:
                signatures[path] = read_file(path)
        except BindError as e:
            table.errors[fn.name] = str(e)
            continue
        sig = signatures[path].get(fn.attr)
        if sig is None:
            table.errors[fn.name] = f"module '{fn.module}' has no function '{fn.attr}' (read without running it)"
            continue
        table.bound[fn.name] = Bound(_not_run(fn), sig.doc, sig.params, sig.returns, sig.required)
    return table


def _not_run(fn: Function):
    def refused(*_args: Any, **_kw: Any) -> Any:
        raise BindError(f"'{fn.attr}' from '{fn.module}' was read, not imported: the workspace is not trusted")

    return refused


def _shown(path: Path, program: Program, base: Path) -> str:
    """An imported file's name as errors show it: relative to the importer's, as written."""
    if program.file and not program.file.startswith("<"):
        return os.path.normpath(os.path.join(os.path.dirname(program.file), os.path.relpath(path, base)))
    return str(path)


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


__all__ = ["Loader", "compile_decorated", "compile_file", "compile_source", "run_passes"]
