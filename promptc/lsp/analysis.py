"""One version of a document, analysed with the compiler's own code: its AST, its compiled
Program, the diagnostics to publish and the `Index` hover and definition answer from.

Runs in the compile worker (`promptc.lsp.worker`), never on the server's request loop.

**Workspace trust.** By default (`trust=False`) nothing of the user's runs: the document is
compiled as `compile_source(..., trust_code=False)` compiles it, which types the Python functions a
workflow `use`s from their source (`promptc.frontend.py_signatures`) instead of importing
them. What only running the code could check is said in an information diagnostic at the
imported name: a `@promptc.workflow` function (inlining it builds its program by importing
its module; untrusted, it is checked as a plain function) and a name its module binds
other than by a `def` (an import, an assignment). `trust=True` (`promptc lsp --trust`, or
the initialization option `{"trust": true}`) compiles exactly as `promptc compile` does.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import attrs
from attrs import frozen

from promptc.compiler import Loader
from promptc.errors import CompileError, Span
from promptc.frontend import ast as A
from promptc.frontend.parser import parse
from promptc.frontend.limits import check_text, decode_source, strip_bom
from promptc.frontend.lower import lower
from promptc.frontend.py_signatures import MAX_SOURCE_BYTES, Signature, SignatureError, other_bindings, read_file
from promptc.lsp.index import Index, ModelScope, Scope, code, entry

log = logging.getLogger(__name__)

NOT_A_DEF = "is not a `def` of"
TRUST_HINT = 'trust the workspace to check it: the initialization option {"trust": true}, or `promptc lsp --trust`'


@frozen
class Diagnostic:
    severity: str  # "error", "warning" or "information"
    message: str
    span: Span | None


@frozen
class Analysis:
    """The AST (None if it does not parse), the Program (None if it does not compile), the
    error that stopped the compiler and the notes on what was not checked."""

    source: str
    file: str
    module: A.Module | None
    program: Any
    error: CompileError | None
    notes: tuple[Diagnostic, ...] = ()
    trusted: bool = False

    def diagnostics(self) -> list[Diagnostic]:
        out = list(self.notes)
        if self.error is not None:
            out.append(Diagnostic("error", self.error.message, self.error.span))
        return out


def analyze(source: str, file: str, *, trust: bool = False) -> Analysis:
    """Parse and compile `source` (named `file`, which resolves `use "x.py"`).

    The steps of `compile_source(source, file, trust_code=trust)`, parsing once: the AST
    is kept for the index, and the lowered program goes through the same `Loader`."""
    module = program = error = None
    notes: tuple[Diagnostic, ...] = ()
    source = strip_bom(source)
    loader = Loader(trust_code=trust)
    loader.sources[file] = source
    try:
        check_text(source, file)
        module = parse(source, file)
        if not trust:
            notes = tuple(_untrusted_notes(module, file))
        program = loader.passes(lower(module), source=source)
    except CompileError as e:
        error = e
    except RecursionError:  # as the driver: `limits.check_depth` keeps inputs far from this
        error = CompileError("the workflow is nested too deeply to compile", Span(file, 1, 1))
    except Exception as e:  # a compiler bug must not take the editor's server down
        log.exception("compiling %s failed", file)
        error = CompileError(f"internal compiler error: {type(e).__name__}: {e}", Span(file, 1, 1))
    if error is not None and "has no function" in error.message and any(
        _same_place(n.span, error.span) and NOT_A_DEF in n.message for n in notes
    ):
        error = None  # the note at that name says why (only running the code could find it)
    return Analysis(source, file, module, program, error, notes, trust)


def _same_place(a: Span | None, b: Span | None) -> bool:
    return a is not None and b is not None and (a.file, a.line, a.col) == (b.file, b.line, b.col)


def _untrusted_notes(module: A.Module, file: str) -> Iterator[Diagnostic]:
    """What an untrusted compile cannot check, at the imported name it is about."""
    for use in module.items:
        if not isinstance(use, A.Use) or not use.module.endswith(".py"):
            continue
        sigs = _signatures(use.module, file)
        if sigs is None:
            continue
        for item in use.names:
            sig = sigs.get(item.attr)
            if sig is not None and sig.workflow:
                yield Diagnostic(
                    "information",
                    f"'{item.attr}' is a @promptc.workflow: inlining it means running {use.module}, which this "
                    f"untrusted workspace does not do, so it is checked as a plain function; {TRUST_HINT}",
                    item.span,
                )
            elif sig is None and _binds(use.module, file, item.attr):
                yield Diagnostic(
                    "information",
                    f"'{item.attr}' {NOT_A_DEF} {use.module}: what it is can only be found by running the "
                    f"file, which this untrusted workspace does not do; {TRUST_HINT}",
                    item.span,
                )


# -- the Python files a document uses (read, never imported) ------------------------------------


def module_path(module: str, file: str) -> Path | None:
    """The file behind `use MODULE` (std modules: promptc's own; a `.py` or `.pflow` path:
    the document's folder, then the working directory); None if there is none."""
    if module.startswith("std."):
        try:
            return Path(str(resources.files("promptc.stdlib").joinpath(module[4:] + ".py")))
        except (ModuleNotFoundError, ValueError):
            return None
    dirs = ([Path(file).parent] if file and not file.startswith("<") else []) + [Path(".")]
    for d in dirs:
        try:
            if (d / module).is_file():
                return d / module
        except (OSError, ValueError):
            return None
    return None


def _signatures(module: str, file: str) -> dict[str, Signature] | None:
    path = module_path(module, file)
    if path is None:
        return None
    if module.endswith(".pflow"):
        return _workflows(path)
    try:
        return read_file(path)
    except SignatureError:
        return None  # the compiler reports it


def _workflows(path: Path) -> dict[str, Signature] | None:
    """The workflow a `use "x.pflow"` imports, as a signature (read and parsed, not compiled)."""
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return None
        module = parse(decode_source(path.read_bytes(), str(path)), str(path))
    except (OSError, ValueError, CompileError, RecursionError):
        return None
    out = {}
    for wf in module.items:
        if isinstance(wf, A.WorkflowDecl):
            at = wf.name_span or wf.span
            out[wf.name] = Signature(wf.name, tuple((p.name, p.type) for p in wf.params), wf.returns, "", at.line, at.col)
    return out


def _binds(module: str, file: str, name: str) -> bool:
    path = module_path(module, file)
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        return False
    return name in other_bindings(text)


# -- the index hover and definition read -----------------------------------------------------


def build_index(a: Analysis) -> Index:
    """Everything hover and go-to-definition answer for this version of the document."""
    if a.module is None:
        return Index(a.source, a.file, {})
    decls: dict[str, list] = {}
    models: list[ModelScope] = []
    workflows: list[Scope] = []
    types = _value_types(a)
    for item in a.module.items:
        if isinstance(item, A.Use):
            sigs = None
            for imp in item.names:
                if imp.local not in decls:
                    sigs = sigs if sigs is not None else (_signatures(item.module, a.file) or {})
                    decls[imp.local] = _import_symbol(a, item, imp, sigs)
            continue
        if isinstance(item, A.TrainDecl):
            continue
        if isinstance(item, A.ModelDecl):
            end = item.name_span or item.span
            models.append(ModelScope(item.name, item.span, (end.line, end.end_col or end.col)))
        if isinstance(item, A.WorkflowDecl):
            workflows.append(Scope(item.name, item.span, _locals(item, types)))
        decls.setdefault(item.name, entry(_decl_hover(item), item.name_span or item.span))
    return Index(a.source, a.file, decls, tuple(models), tuple(workflows))


def _decl_hover(decl: Any) -> str | None:
    if isinstance(decl, A.ModelDecl):
        src = f'env("{decl.env}", "{decl.default}")' if decl.env else f'"{decl.default}"'
        text = code(f"model {decl.name} = {src}")
        if decl.options:
            text += "\n\n" + "\n".join(f"- `{k}` {v!r}" for k, v in decl.options)
        return text + f"\n\nEach option can be overridden by `PROMPTC_{decl.name.upper()}_<OPTION>`."
    if isinstance(decl, A.ParamDecl):
        kind = "prompt" if decl.kind == "prompt" else f"demos(max = {decl.max_demos})"
        text = code(f"param {decl.name}: {kind}" + (" trainable" if decl.trainable else ""))
        if decl.role:
            text += f"\n\nrole: {decl.role}"
        if decl.kind == "prompt" and decl.text:
            text += "\n\n" + _quote(decl.text)
        return text
    if isinstance(decl, A.LlmDecl):
        args = ", ".join(f"{p.name}: {p.type}" for p in decl.params)
        return code(f"llm {decl.name}({args}) -> {decl.returns} via {decl.model}")
    if isinstance(decl, A.WorkflowDecl):
        args = ", ".join(f"{p.name}: {p.type}" for p in decl.params)
        return code(f"workflow {decl.name}({args}) -> {decl.returns}")
    return None


def _import_symbol(a: Analysis, use: A.Use, item: A.ImportName, sigs: dict[str, Signature]) -> list:
    """An imported name: the function's signature and docstring, and its `def` (read from
    the Python file's source; the compiled program's types when it compiled)."""
    sig = sigs.get(item.attr)
    path = module_path(use.module, a.file)
    target = Span(str(path), sig.line, sig.col, sig.line, sig.col + len(sig.name)) if sig and path else item.span
    fn = next((f for f in a.program.functions if f.name == item.local), None) if a.program is not None else None
    if fn is not None:
        params, returns, doc = fn.params, fn.returns, fn.doc
    elif sig is not None:
        params, returns, doc = sig.params, sig.returns, sig.doc
    else:
        module = use.module if use.module.startswith("std.") else f'"{use.module}"'
        return entry(code(f"use {module} {{ {item.attr} }}"), target)
    args = ", ".join(f"{n}: {t}" for n, t in params)
    kind = "workflow " if use.module.endswith(".pflow") or (sig is not None and sig.workflow) else ""
    text = code(f"{kind}{item.local}({args}) -> {returns}") + f"\n\nfrom `{use.module}`"
    text += f"\n\n{doc.strip()}" if doc else ""
    if sig is not None and sig.notes:  # why an annotation reads as json
        text += "\n\n" + "\n".join(f"- {n}" for n in sig.notes)
    return entry(text, target)


def _locals(wf: A.WorkflowDecl, types: dict[str, str]) -> dict[str, list]:
    out: dict[str, list] = {}
    where = f"workflow `{wf.name}`"
    for p in wf.params:
        out.setdefault(p.name, entry(code(f"{p.name}: {p.type}") + f"\n\nargument in {where}", p.span))
    for kind, name, span in _bindings(wf.body):
        if name not in out:
            typ = types.get(name)
            out[name] = entry(code(f"{name}: {typ}" if typ else name) + f"\n\n{kind} in {where}", span)
    return out


def _bindings(body: Any) -> Iterator[tuple[str, str, Span]]:
    """Every name a statement list binds, in source order (any statement kind: the walk is
    generic over the AST's attrs records, so new statements with bodies are covered)."""
    stack = [iter(body)]
    while stack:  # explicit stack: nesting depth is bounded by the parser, but stays cheap
        stmt = next(stack[-1], None)
        if stmt is None:
            stack.pop()
            continue
        if isinstance(stmt, A.Let):
            yield "let", stmt.name, stmt.name_span
        elif isinstance(stmt, A.For):
            yield "loop variable", stmt.var, stmt.var_span
        if attrs.has(type(stmt)):
            for f in reversed(attrs.fields(type(stmt))):
                value = getattr(stmt, f.name)
                if isinstance(value, tuple) and value and attrs.has(type(value[0])):
                    stack.append(iter(value))


def _value_types(a: Analysis) -> dict[str, str]:
    """Variable -> the type the compiler gave its first SSA value (`x`, `x.2`, `x@loop#0`)."""
    out: dict[str, str] = {}
    if a.program is None:
        return out
    for node in a.program.workflow.nodes:
        base = re.split(r"[.@]", node.name, maxsplit=1)[0]
        if node.type is not None and base not in out:
            out[base] = str(node.type)
    return out


def _quote(text: str, limit: int = 400) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + "…"
    return "\n".join("> " + ln for ln in text.splitlines())
