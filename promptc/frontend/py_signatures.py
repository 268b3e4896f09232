"""The functions of a Python file, read from its source with `ast`: never imported, never run.

`use "tools.py" { search }` normally binds `search` by importing `tools.py`
(`promptc.bind`). Where that file is not trusted (the language server's default,
`compile_source(..., trust_code=False)`), the compiler types the function from its source
instead:

    sigs = read_signatures(Path("tools.py"), text)
    sigs["search"].params   # (("query", text), ("k", int))

Only module-level `def`/`async def` statements are read; a name the module binds some
other way (an import, an assignment, a class) is absent from the result, and so is a
function rebound after its `def`. The last `def` of a name wins, as in Python.

Annotations map to promptc types exactly as `promptc.bind.python_type` maps the evaluated
ones: `str` text, `int`, `float`, `bool`, `list[T]`/`List[T]`/`tuple[T, ...]` list,
`Literal["a", "b"]` enum, a `TypedDict` declared in the file a record, `Annotated[T, ...]`
T; `Any`, `None`, `dict`, unions, `Optional[...]`, classes and anything else json.
Names are resolved against the file's own imports (`import typing as t`,
`from typing import Literal as L`), its module-level aliases (`Label = Literal[...]`)
and the builtins; string annotations (and `from __future__ import annotations`) are
parsed and read the same way. As `bind.type_hints` does when annotations do not
evaluate, an annotation naming something the file never defines makes the whole
signature untyped (json everywhere); `Signature.notes` says why for every annotation
that was read as json although it was written as something else.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
from pathlib import Path

from attrs import Factory, field, frozen

from promptc.bind import BindError
from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, Type, enum, list_of

__all__ = ["Signature", "SignatureError", "read_signatures", "read_file", "other_bindings", "MAX_SOURCE_BYTES"]

MAX_SOURCE_BYTES = 4 * 1024 * 1024  # a `use`d Python file bigger than this is not read
_MAX_DEPTH = 32  # nesting of annotations, aliases and string annotations read before giving up

_TYPING = ("typing", "typing_extensions")
_SCALARS = {"builtins.str": TEXT, "builtins.int": INT, "builtins.float": FLOAT, "builtins.bool": BOOL}
_LISTS = {"builtins.list", "builtins.tuple", *(f"{m}.{n}" for m in _TYPING for n in ("List", "Tuple"))}
_PLAIN_JSON = {"builtins.dict", "builtins.object", *(f"{m}.{n}" for m in _TYPING for n in ("Any", "Dict"))}
_BUILTINS = frozenset(dir(builtins))


class SignatureError(BindError):
    """The file cannot be read as Python (a syntax error, NUL bytes, too big, not UTF-8...)."""


@frozen
class Signature:
    """A module-level function as its source declares it.

    `line`/`col` are 1-based and locate the function's name in its `def` line (columns
    in characters). `required` counts the positional parameters without a default;
    `workflow` is True for a `@promptc.workflow` function, whose program only running
    the file can build; `notes` lists the annotations read as json, and why.
    """

    name: str
    params: tuple[tuple[str, Type], ...]
    returns: Type
    doc: str
    line: int
    col: int
    required: int = field(default=Factory(lambda self: len(self.params), takes_self=True))
    workflow: bool = False
    notes: tuple[str, ...] = ()


def read_file(path: Path) -> dict[str, Signature]:
    """`read_signatures` of the file at `path` (decoded as Python decodes source: a BOM or
    a coding cookie, else UTF-8); an unreadable file is a `SignatureError`."""
    try:
        if not path.is_file():  # a folder, a FIFO (opening it would wait for a writer), a device
            raise SignatureError(f"cannot read '{path.name}': not a regular file")
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as e:
        raise SignatureError(f"cannot read '{path.name}': {e.strerror or e}") from None
    except ValueError as e:  # a NUL in the path
        raise SignatureError(f"cannot read '{path.name}': {e}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise SignatureError(f"'{path.name}' is over {MAX_SOURCE_BYTES // (1024 * 1024)} MB: not read")
    try:
        text = importlib.util.decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError) as e:
        raise SignatureError(f"cannot decode '{path.name}': {e}") from None
    return read_signatures(path, text)


def read_signatures(path: Path, text: str) -> dict[str, Signature]:
    """The module-level functions of the Python source `text` (from the file `path`), by name."""
    if len(text) > MAX_SOURCE_BYTES:
        raise SignatureError(f"'{path.name}' is over {MAX_SOURCE_BYTES // (1024 * 1024)} MB: not read")
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        where = f" (line {e.lineno})" if e.lineno else ""
        raise SignatureError(f"cannot read '{path.name}': {e.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes; nesting the parser refuses
        raise SignatureError(f"cannot read '{path.name}': {type(e).__name__}: {e or 'nested too deeply'}") from None
    names = _Names(tree)
    lines = text.splitlines()
    out: dict[str, Signature] = {}
    for stmt in tree.body:
        for bound in _bound_names(stmt):
            out.pop(bound, None)  # rebound by something else than a `def`: not readable
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[stmt.name] = _signature(stmt, names, lines)
    return out


def other_bindings(text: str) -> frozenset[str]:
    """The module-level names `text` binds other than by `def` (imports, assignments,
    classes): what only running the file could tell the type of. Empty if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    return frozenset(name for stmt in tree.body for name in _bound_names(stmt))


# -- one function ------------------------------------------------------------------------


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: "_Names", lines: list[str]) -> Signature:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    notes: list[str] = []
    reader = _Reader(names, notes)
    params = tuple((p.arg, reader.read(p.annotation, f"parameter '{p.arg}'")) for p in positional)
    returns = reader.read(fn.returns, "the return")
    if reader.undefined:  # as `bind.type_hints`: annotations that do not evaluate leave it untyped
        params = tuple((n, JSON) for n, _ in params)
        returns = JSON
        notes = [f"its annotations name '{reader.undefined}', which the file does not define: untyped (json)"]
    line, col = _name_position(fn, lines)
    return Signature(
        name=fn.name,
        params=params,
        returns=returns,
        doc=ast.get_docstring(fn) or "",
        line=line,
        col=col,
        required=len(positional) - len(a.defaults),
        workflow=any(names.is_workflow_decorator(d) for d in fn.decorator_list),
        notes=tuple(notes),
    )


def _name_position(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> tuple[int, int]:
    """1-based line and character column of the function's name (`def` is where ast puts it)."""
    line = fn.lineno
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    start = len(text.encode("utf-8")[: fn.col_offset].decode("utf-8", "replace"))
    at = text.find(fn.name, text.find("def", start) + 3)
    return line, (at if at >= 0 else start) + 1


def _bound_names(stmt: ast.stmt) -> list[str]:
    """Names a module-level statement binds other than by `def`."""
    if isinstance(stmt, ast.ClassDef):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(al.asname or al.name).split(".")[0] for al in stmt.names]
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            return []
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


# -- names the annotations can use ---------------------------------------------------------


class _Names:
    """What the module's top-level names mean: imports (qualified names) and the last
    statement that binds each other name (a class, an alias assignment, a def)."""

    def __init__(self, tree: ast.Module):
        self.qualified: dict[str, str] = {}
        self.local: dict[str, ast.AST] = {}
        self.star = False
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                for al in stmt.names:
                    local = al.asname or al.name.split(".")[0]
                    self._bind(local, al.name if al.asname else local)
            elif isinstance(stmt, ast.ImportFrom):
                base = "." * stmt.level + (stmt.module or "")
                for al in stmt.names:
                    if al.name == "*":
                        self.star = True
                    else:
                        self._bind(al.asname or al.name, f"{base}.{al.name}")
            elif isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self._bind(stmt.name, stmt)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self._bind(stmt.targets[0].id, stmt.value)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                self._bind(stmt.target.id, stmt.value)
            else:
                for name in _bound_names(stmt):
                    self._bind(name, stmt)

    def _bind(self, name: str, what: str | ast.AST) -> None:
        self.qualified.pop(name, None)
        self.local.pop(name, None)
        if isinstance(what, str):
            self.qualified[name] = what
        else:
            self.local[name] = what

    def qualify(self, node: ast.expr, depth: int = 0) -> str | ast.AST | None:
        """A dotted qualified name (`typing.Literal`, `builtins.str`), the local statement
        or expression a name stands for, or None when the file does not define it."""
        if depth > _MAX_DEPTH:
            return "<expression>"
        if isinstance(node, ast.Name):
            if node.id in self.local:
                what = self.local[node.id]
                if isinstance(what, (ast.Name, ast.Attribute)) and depth < _MAX_DEPTH:  # `L = typing.List`
                    return self.qualify(what, depth + 1)
                return what
            if node.id in self.qualified:
                return self.qualified[node.id]
            return f"builtins.{node.id}" if node.id in _BUILTINS else None
        if isinstance(node, ast.Attribute):
            base = self.qualify(node.value, depth + 1)
            if isinstance(base, str):
                return f"{base}.{node.attr}"
            return "<attribute>" if base is not None else None
        return "<expression>"

    def is_workflow_decorator(self, node: ast.expr) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        q = self.qualify(target)
        return isinstance(q, str) and q.startswith("promptc.") and q.endswith(".workflow")


# -- annotations to types ------------------------------------------------------------------


class _Reader:
    """Reads annotations as `bind.python_type` reads their values; collects notes."""

    def __init__(self, names: _Names, notes: list[str]):
        self.names = names
        self.notes = notes
        self.undefined: str | None = None

    def read(self, node: ast.expr | None, what: str) -> Type:
        if node is None:
            return JSON
        typ, why = self._type(node, 0)
        if why:
            self.notes.append(f"{what}: {why}: json")
        return typ

    def _type(self, node: ast.AST, depth: int) -> tuple[Type, str]:
        """(type, why it is json where it was written as something else, or "")."""
        if depth > _MAX_DEPTH:
            return JSON, "nested too deeply to read"
        if isinstance(node, ast.Constant):
            if node.value is None:
                return JSON, ""
            if isinstance(node.value, str):  # a string annotation (or a forward reference)
                try:
                    inner = ast.parse(node.value.strip(), mode="eval").body
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    return JSON, f"the string annotation {node.value[:40]!r} is not an expression"
                return self._type(inner, depth + 1)
            return JSON, f"{ast.unparse(node)[:40]} is not a type"
        if isinstance(node, ast.Subscript):
            return self._generic(node, depth)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return JSON, "a union is json"
        q = self.names.qualify(node)
        if q is None:
            self.undefined = self.undefined or _shown(node)
            return JSON, ""
        if isinstance(q, str):
            return self._named(q, node)
        return self._local(q, node, depth)

    def _named(self, q: str, node: ast.AST) -> tuple[Type, str]:
        if q in _SCALARS:
            return _SCALARS[q], ""
        if q in _LISTS or q in _PLAIN_JSON:  # a bare `list` has no element type: json, as `python_type` reads it
            return JSON, ""
        return JSON, f"'{_shown(node)}' is not a type promptc reads"

    def _local(self, stmt: ast.AST, node: ast.AST, depth: int) -> tuple[Type, str]:
        """A name the module binds: a TypedDict class, an alias, or something json."""
        if isinstance(stmt, ast.ClassDef):
            if self._is_typeddict(stmt, depth):
                return self._record(stmt, depth), ""
            return JSON, f"the class '{stmt.name}' is json (only a TypedDict is a record)"
        if isinstance(stmt, ast.Call) and self._typing_name(stmt.func) == "TypedDict":
            return self._functional_record(stmt, depth)
        if isinstance(stmt, ast.expr):  # an alias: `Label = Literal["a", "b"]`
            return self._type(stmt, depth + 1)
        return JSON, f"'{_shown(node)}' is not a type promptc reads"

    def _generic(self, node: ast.Subscript, depth: int) -> tuple[Type, str]:
        q = self.names.qualify(node.value)
        if q is None:
            self.undefined = self.undefined or _shown(node.value)
            return JSON, ""
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        name = self._typing_name(node.value)
        if name == "Literal":
            labels = [a.value for a in args if isinstance(a, ast.Constant)]
            if len(labels) == len(args) and all(isinstance(v, str) for v in labels):
                return enum(*labels), ""
            return JSON, "a Literal of anything but strings is json"
        if name == "Annotated":
            return self._type(args[0], depth + 1)
        if isinstance(q, str) and q in _LISTS:
            elem, why = self._type(args[0], depth + 1)
            return list_of(elem), why
        if isinstance(q, str) and q == "builtins.dict" or name in ("Dict", "Mapping"):
            return JSON, ""
        if name in ("Optional", "Union"):
            return JSON, f"{'an Optional' if name == 'Optional' else 'a Union'} is json"
        return JSON, f"'{_shown(node.value)}[...]' is not a type promptc reads"

    def _typing_name(self, node: ast.expr) -> str | None:
        q = self.names.qualify(node)
        if isinstance(q, str) and q.rpartition(".")[0] in _TYPING:
            return q.rpartition(".")[2]
        return None

    def _is_typeddict(self, cls: ast.ClassDef, depth: int) -> bool:
        for base in cls.bases:
            if self._typing_name(base) == "TypedDict":
                return True
            q = self.names.qualify(base)
            if isinstance(q, ast.ClassDef) and q is not cls and depth < _MAX_DEPTH and self._is_typeddict(q, depth + 1):
                return True
        return False

    def _record(self, cls: ast.ClassDef, depth: int) -> Type:
        fields: dict[str, Type] = {}
        for base in cls.bases:  # inherited fields first, as `typing.get_type_hints` lists them
            q = self.names.qualify(base)
            if isinstance(q, ast.ClassDef) and q is not cls and depth < _MAX_DEPTH and self._is_typeddict(q, depth + 1):
                fields.update(self._record(q, depth + 1).fields)
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                typ, why = self._type(stmt.annotation, depth + 1)
                if why:
                    self.notes.append(f"field '{stmt.target.id}' of '{cls.name}': {why}: json")
                fields[stmt.target.id] = typ
        return Type("record", fields=tuple(fields.items()))

    def _functional_record(self, call: ast.Call, depth: int) -> tuple[Type, str]:
        spec = call.args[1] if len(call.args) > 1 else None
        if not isinstance(spec, ast.Dict) or not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in spec.keys):
            return JSON, "a TypedDict(...) call without a literal dict of fields is json"
        fields = tuple((k.value, self._type(v, depth + 1)[0]) for k, v in zip(spec.keys, spec.values))  # type: ignore[union-attr]
        return Type("record", fields=fields), ""


def _shown(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # an AST unparse cannot print: name it by its kind
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."
