"""Binding `use` declarations to Python callables, and Python annotations to promptc types.

`use std.text { strip }` binds `promptc.stdlib.text.strip`; `use "tools.py" { search }`
binds `search` from the file `tools.py`, resolved against the directories given (the
source file's directory first). `search_path` is the one rule for where a `use "x.py"`
is looked up, and `bind_program` binds every function of a program once into a
`FunctionTable` (callable, docstring, parameter types, return type, required arity) that
the resolve pass (docs and signatures into `ir.Function`), the type checker (arity), the
interpreter (calls) and evaluation (the metric) share. The table is not part of the
`Program` (callables are not data): `bind_program` keeps the tables of the last programs
it bound, keyed by their functions and search path, so the passes and the runtime of one
process bind a program's functions once.

**The trust rule for code an artifact names.** A `.pflow` source (or a decorated Python
function) is the user's own code: what it `use`s is imported as Python's `import` would.
A `.pfc` artifact is data from elsewhere, and its checksum proves integrity, not origin,
so running one imports only:

- `std.*` modules (promptc's own), always;
- user modules named by a *relative* path with no `..`, that resolve (symlinks followed)
  to a file inside the artifact's own folder, and only for the functions the program
  calls (and the metric `eval` uses).

Anything else (an absolute path, `../x.py`, a symlink out of the folder) is refused with
a `BindError` that says so, unless the caller trusts the artifact: `--trust-code` on
`promptc run/eval`, `promptc.load(path, trust_code=True)`, as Hugging Face's
`trust_remote_code`. The runtime learns it is binding for an artifact from an
`ArtifactRoot` (the artifact's folder) among its search directories; loading a `.pfc`
(`promptc.load`, `promptc run/eval`) puts it there.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
import sys
import types as pytypes
import typing
from pathlib import Path
from typing import Any, Callable, Iterable

from attrs import field, frozen

from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, Type, enum, list_of

log = logging.getLogger(__name__)


_STD_NAME = re.compile(r"std(\.[A-Za-z_][A-Za-z0-9_]*)+")


class BindError(Exception):
    """A `use` that names a module or function that cannot be found (or may not be imported)."""


@frozen
class ArtifactRoot:
    """The folder of a loaded `.pfc`, as a search directory: the trust rule applies there."""

    path: Path
    trusted: bool = False


def artifact_root(search_dirs: Iterable[Any]) -> ArtifactRoot | None:
    return next((d for d in search_dirs if isinstance(d, ArtifactRoot)), None)


def search_path(file: str, search_dirs: Iterable[Any] = ()) -> tuple[Any, ...]:
    """Where `use "x.py"` of a program read from `file` is looked up, in order: the
    directory of `file` (a real path; none for `<string>` sources), then `search_dirs`,
    then the working directory (`load_module`). The `file` field of an untrusted
    artifact is not a place to import from: only its `ArtifactRoot` is searched."""
    dirs = tuple(Path(d) if isinstance(d, str) else d for d in search_dirs)
    root = artifact_root(dirs)
    if file and not file.startswith("<") and (root is None or root.trusted):
        dirs = (Path(file).resolve().parent, *dirs)
    return tuple(dict.fromkeys(dirs))  # each place once, first position kept


def confined_file(module: str, root: Path) -> Path:
    """The file `use "module"` of an untrusted artifact in `root` may import, or a `BindError`."""
    hint = "; run it with --trust-code (or promptc.load(..., trust_code=True)) if you trust where it came from"
    rel = Path(module)
    if rel.is_absolute() or module.startswith(("/", "\\")) or (len(module) > 1 and module[1] == ":"):
        raise BindError(f"refusing to import '{module}' named by the artifact: an absolute path{hint}")
    if ".." in rel.parts or ".." in module.replace("\\", "/").split("/"):
        raise BindError(f"refusing to import '{module}' named by the artifact: a path out of its folder{hint}")
    base = root.resolve()
    try:  # a NUL, a name too long, a symlink loop: no file to import
        path = (base / rel).resolve()
        found = path.is_relative_to(base) and path.is_file()
    except (OSError, RuntimeError, ValueError) as e:
        raise BindError(f"cannot use module file {module[:200]!r} named by the artifact ({type(e).__name__}: {str(e)[:200]})") from None
    if not path.is_relative_to(base):
        raise BindError(f"refusing to import '{module}' named by the artifact: it resolves outside the artifact's folder{hint}")
    if not found:
        raise BindError(
            f"cannot find module file '{module}' in the artifact's folder {base}: copy '{module}' next to the "
            "artifact, or, from code that imports the workflow's module, put the trained params on it with "
            "`WORKFLOW.load(path)` (or `promptc.load(path, workflow=WORKFLOW)`)"
        )
    return path


def confine_calls(program: Any, root: ArtifactRoot) -> None:
    """Raise the `BindError` of the first user module an untrusted artifact's calls would
    import from outside `root` (nothing to check for a trusted one or `std.` modules)."""
    if root.trusted:
        return
    used = program.called()
    for fn in program.functions:
        if fn.name in used and not fn.module.startswith("std."):
            confined_file(fn.module, root.path)


def load_module(module: str, search_dirs: Iterable[str | Path] = ()) -> pytypes.ModuleType:
    if module.startswith("std."):
        if not _STD_NAME.fullmatch(module):
            raise BindError(f"'{module}' is not a standard module name (std.<name>, like std.text)")
        name = "promptc.stdlib." + module[4:]
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
                raise
            raise BindError(f"no standard library module '{module}'") from None
    root = artifact_root(search_dirs)
    if root is not None and not root.trusted:
        return _load_file(confined_file(module, root.path))
    search_dirs = [d.path if isinstance(d, ArtifactRoot) else d for d in search_dirs]
    for d in [*search_dirs, "."]:
        path = (Path(d) / module).resolve()
        if path.is_file():
            return _load_file(path)
    raise BindError(f"cannot find module file '{module}'")


def _load_file(path: Path) -> pytypes.ModuleType:
    key = "promptc_user_" + str(abs(hash(str(path))))
    cached = sys.modules.get(key)
    if cached is not None and getattr(cached, "__file__", None) == str(path):
        return cached
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise BindError(f"cannot load module file '{path}'")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # the user's module failed to import: a bind error, located by the caller
        del sys.modules[key]
        raise BindError(f"importing '{path.name}' failed: {type(e).__name__}: {e}") from e
    return mod


def load_callable(module: str, attr: str, search_dirs: Iterable[str | Path] = ()) -> Callable[..., Any]:
    mod = load_module(module, search_dirs)
    fn = getattr(mod, attr, None)
    if fn is None or not callable(fn):
        raise BindError(f"module '{module}' has no function '{attr}'")
    return fn


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """`fn`'s evaluated annotations; {} when they do not evaluate (then everything is untyped,
    `json`), so a function with a forward reference to an unknown name still binds."""
    try:
        return typing.get_type_hints(fn)
    except Exception as e:
        log.debug("annotations of %r do not evaluate (%s): untyped", fn, e)
        return {}


def signature_types(fn: Callable[..., Any]) -> tuple[tuple[tuple[str, Type], ...], Type]:
    """(params, returns) of a callable, from its annotations; unannotated means `json`."""
    hints = type_hints(fn)
    sig = inspect.signature(fn)
    params = tuple(
        (name, python_type(hints.get(name)))
        for name, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    return params, python_type(hints.get("return"))


def python_type(annotation: Any) -> Type:
    """Map a Python annotation to a promptc type (`str`→text, `Literal[...]`→enum, ...)."""
    if annotation is None or annotation is inspect.Parameter.empty or annotation is Any:
        return JSON
    if annotation is str:
        return TEXT
    if annotation is bool:
        return BOOL
    if annotation is int:
        return INT
    if annotation is float:
        return FLOAT
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal and all(isinstance(a, str) for a in args):
        return enum(*args)
    if origin in (list, tuple, typing.List) and args:
        return list_of(python_type(args[0]))
    if isinstance(annotation, type) and typing.is_typeddict(annotation):
        hints = typing.get_type_hints(annotation)
        return Type("record", fields=tuple((n, python_type(t)) for n, t in hints.items()))
    return JSON


# -- a program's functions, bound once ------------------------------------------------------


@frozen
class Bound:
    """One `use`d function: the callable, and what the compiler reads from it."""

    fn: Callable[..., Any]
    doc: str
    params: tuple[tuple[str, Type], ...]
    returns: Type
    required: int  # positional parameters without a default


@frozen
class FunctionTable:
    """A program's functions by local name; `errors` holds why a function did not bind."""

    bound: dict[str, Bound] = field(factory=dict)
    errors: dict[str, str] = field(factory=dict)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self.bound[name].fn

    def __contains__(self, name: str) -> bool:
        return name in self.bound

    def get(self, name: str) -> Bound | None:
        return self.bound.get(name)

    def callables(self) -> dict[str, Callable[..., Any]]:
        return {name: b.fn for name, b in self.bound.items()}


_TABLES: dict[tuple, FunctionTable] = {}
_MAX_TABLES = 64


def bind_program(program: Any, search_dirs: Iterable[Any] = (), *, only: Iterable[str] | None = None) -> FunctionTable:
    """Bind the functions of `program` (those named in `only`, else all) with the search
    path of `search_path(program.file, search_dirs)`.

    A function that cannot be bound (a `BindError`, or a callable whose signature cannot
    be read) is left out, with its message in `errors`: the caller decides whether that
    is an error (the resolve pass: always; the runtime: for a function the program
    calls). A table with no errors is remembered, so the next caller binding the same
    functions on the same search path (the type checker after resolve, the interpreter
    after compiling) gets it without importing or inspecting anything again.
    """
    dirs = search_path(program.file, search_dirs)
    wanted = None if only is None else frozenset(only)
    functions = tuple((f.name, f.module, f.attr) for f in program.functions if wanted is None or f.name in wanted)
    key = (functions, dirs)
    table = _TABLES.get(key)
    if table is not None:
        return table
    table = FunctionTable()
    for name, module, attr in functions:
        try:
            table.bound[name] = _bind_one(module, attr, dirs)
        except BindError as e:
            table.errors[name] = str(e)
        except (TypeError, ValueError) as e:  # a callable without an inspectable signature
            table.errors[name] = f"cannot read the signature of '{attr}': {e}"
    if not table.errors:
        if len(_TABLES) >= _MAX_TABLES:
            del _TABLES[next(iter(_TABLES))]
        _TABLES[key] = table
    return table


def _bind_one(module: str, attr: str, dirs: tuple[Any, ...]) -> Bound:
    fn = load_callable(module, attr, dirs)
    params, returns = signature_types(fn)
    sig = inspect.signature(fn)
    required = sum(
        1
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )
    return Bound(fn, inspect.getdoc(fn) or "", params, returns, required)
