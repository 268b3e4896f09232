"""Binding `use` declarations to Python callables, and Python annotations to promptc types.

`use std.text { strip }` binds `promptc.stdlib.text.strip`; `use "tools.py" { search }`
binds `search` from the file `tools.py`, resolved against the directories given (the
source file's directory first). Used by the resolve pass (for docstrings and signatures)
and by the runtime (to call the function).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import types as pytypes
import typing
from pathlib import Path
from typing import Any, Callable, Iterable

from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, Type, enum, list_of


_STD_NAME = re.compile(r"std(\.[A-Za-z_][A-Za-z0-9_]*)+")


class BindError(Exception):
    """A `use` that names a module or function that cannot be found."""


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


def signature_types(fn: Callable[..., Any]) -> tuple[tuple[tuple[str, Type], ...], Type]:
    """(params, returns) of a callable, from its annotations; unannotated means `json`."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # annotations that do not evaluate: treat as untyped
        hints = {}
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
