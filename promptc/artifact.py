"""`.pfc` artifacts: a compiled Program (and the trainer's extra data) as msgpack.

Layout: an envelope map ``{"magic": "promptc-pfc", "format": 2, "source_hash": ...,
"payload": bytes, "sha256": hex digest of payload}``; the payload is msgpack of
``{"program": <plain data>, "extra": {...}}``. The program is encoded by `promptc.codec`
from the IR records' own annotations (a record is a map of its fields; see that module):
loading builds records from lists, dicts and scalars only, and only the record classes
reachable from `Program` — no pickle, no eval, no import, no code runs (functions are
bound by name later, by whoever runs the program). Tuples inside free values (const
targets, demos, extra) are kept as tuples with a msgpack extension type, so a round trip
gives back an equal Program.

Errors are `ArtifactError` with a one-line message: not a .pfc, written by an older
promptc (format 1: "recompile with `promptc compile`") or an unknown format, truncated or
corrupt data, checksum mismatch (tampered), malformed payload (naming the wrong field:
decoding checks every field against its annotation, plus the rules of `_CHECKS`).

Hostile files are refused before they cost much (the checksum proves integrity, not
origin, so a crafted file can carry a valid one):

- a file larger than `max_bytes()` (64 MiB, or `PROMPTC_MAX_PFC_BYTES`) is not read;
- msgpack's own limits (`max_str_len`, `max_array_len`, ...) are set from the size of the
  buffer being decoded; the envelope is a map of five scalars and is decoded with tight
  limits; the payload may hold at most one list or map per `_BYTES_PER_CONTAINER` bytes
  (compiled examples use one per 36 to 50 bytes), which bounds the memory a decode can take
  to a small multiple of the file's size;
- tuples nest at most `MAX_TUPLE_DEPTH` deep (each is a nested decode), and the decoded
  data at most `MAX_DATA_DEPTH` deep (checked without recursion before any record is
  built);
- the cyclic garbage collector is paused while a payload is decoded (it would rescan the
  millions of fresh containers of a large file over and over).
"""

from __future__ import annotations

import gc
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from promptc.codec import Codec, CodecError
from promptc.ir import Demo, Function, Message, Model, Param, Program, check_model_option
from promptc.secrets import secret_variable
from promptc.types import SCALARS, Type
from promptc.verify import VerifyError, plain_data, verify

MAGIC = "promptc-pfc"
FORMAT = 2  # 1: positional converters (up to f0af8b3); 2: `promptc.codec`, records as field maps
_TUPLE = 1  # msgpack ext code for a tuple

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_TUPLE_DEPTH = 32
MAX_DATA_DEPTH = 256
_BYTES_PER_CONTAINER = 8


def max_bytes() -> int:
    """The largest `.pfc` that is read: `PROMPTC_MAX_PFC_BYTES`, else 64 MiB."""
    raw = os.environ.get("PROMPTC_MAX_PFC_BYTES", "")
    try:
        return int(raw) if raw.strip() else DEFAULT_MAX_BYTES
    except ValueError:
        raise ArtifactError(f"PROMPTC_MAX_PFC_BYTES must be a number of bytes, not {raw!r}") from None


class ArtifactError(Exception):
    """A .pfc file that cannot be loaded (or a value that cannot be saved)."""


# -- free values (const targets, demos, extra) -----------------------------------------


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    if isinstance(obj, float):  # a float subclass, e.g. a metric's Score: saved as its number
        return float(obj)
    raise ArtifactError(f"cannot save a value of type {type(obj).__name__} in a .pfc")


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)


class _Budget:
    """Counts the lists and maps a decode builds; refuses more than its file can hold."""

    def __init__(self, size: int):
        self.left = size // _BYTES_PER_CONTAINER + 1024

    def spend(self, obj: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise ArtifactError("malformed .pfc payload (far more lists and maps than a program of its size has)")
        return obj


def _unpack(data: bytes, budget: _Budget | None = None, depth: int = 0) -> Any:
    """Decode a payload (or a tuple inside it) under size, count and nesting limits."""
    budget = budget or _Budget(len(data))

    def ext_hook(code: int, inner: bytes) -> Any:
        if code != _TUPLE:
            raise ArtifactError(f"malformed .pfc payload (unknown msgpack extension type {code})")
        if depth >= MAX_TUPLE_DEPTH:
            raise ArtifactError(f"malformed .pfc payload (tuples nested more than {MAX_TUPLE_DEPTH} deep)")
        return tuple(_unpack(inner, budget, depth + 1))

    n = len(data)
    return msgpack.unpackb(
        data, raw=False, strict_map_key=False, ext_hook=ext_hook, list_hook=budget.spend, object_hook=budget.spend,
        max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n // 2, max_ext_len=n,
    )


def _check_depth(data: Any, limit: int = MAX_DATA_DEPTH) -> None:
    """Refuse data nested deeper than `limit` (an explicit stack of containers: no recursion)."""
    stack = [(data, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        obj, d = pop()
        if d > limit:
            raise ArtifactError(f"malformed .pfc payload (data nested more than {limit} deep)")
        for v in obj.values() if type(obj) is dict else obj if type(obj) in (list, tuple) else ():
            t = type(v)
            if t is dict or t is list or t is tuple:
                push((v, d + 1))


# -- records <-> plain data ---------------------------------------------------------------


def _model_options(m: Model) -> str | None:
    for name, value in m.options:
        try:
            normal = check_model_option(name, value)
        except ValueError as e:
            return f"has a bad option ({_clip(str(e), 120)})"
        if type(normal) is not type(value):
            return f"has option {_clip(repr(name), 60)} of the wrong type"
    return None


def _function_names(f: Function) -> str | None:
    """Where a function is found: a module path no file system refuses outright, and a
    plain Python name in it (not a dunder: `__class__` of a module is callable too)."""
    if not f.module or "\x00" in f.module:
        return f"has no usable module name ({_clip(repr(f.module), 60)})"
    if not f.attr.isidentifier() or (f.attr.startswith("__") and f.attr.endswith("__")):
        return f"names {_clip(repr(f.attr), 60)}, which is not a function's name"
    return None


def _demo_data(d: Demo) -> str | None:
    if plain_data(d.inputs) and plain_data(d.output):
        return None
    return "holds a value that is not plain data (text, numbers, bools, lists, maps with text keys)"


# record class -> a rule its values keep beyond their field types (None, or what a breach is)
_CHECKS = {
    Type: lambda t: None if _valid_type(t) else f"is not a valid type: kind {_clip(repr(t.kind), 60)}",
    Param: lambda p: None if p.kind in ("prompt", "demos") else f"has unknown kind {_clip(repr(p.kind), 60)}",
    Message: lambda m: None if m.role in _ROLES else f"has unknown role {_clip(repr(m.role), 60)}",
    Model: _model_options,
    Function: _function_names,
    Demo: _demo_data,
}
_ROLES = ("system", "user", "assistant")
CODEC = Codec(Program, _CHECKS)


def program_to_data(p: Program) -> dict:
    """The Program as plain msgpack-able data (the inverse of `program_from_data`)."""
    try:
        return CODEC.encode(p)
    except CodecError as e:
        raise ArtifactError(f"cannot save the program: {e}") from None


def program_from_data(d: Any) -> Program:
    """The Program that `d` encodes, checked field by field; `CodecError` says where it is wrong."""
    return CODEC.decode(d)


def _valid_type(t: Type) -> bool:
    """The shape rules of one `Type` record (its parts are checked as they are decoded)."""
    if t.kind in SCALARS:
        return t.elem is None and not t.fields and not t.labels
    if t.kind == "list":
        return t.elem is not None and not t.fields and not t.labels
    if t.kind == "record":
        return t.elem is None and not t.labels
    if t.kind == "enum":
        return t.elem is None and not t.fields and bool(t.labels)
    return False


def _check_references(program: Program) -> None:
    """Every name a record uses is declared: what the runtime looks up, it finds.

    (`verify` checks the nodes' own references only for programs past the resolve pass; a
    crafted artifact can claim any pass list.)
    """
    models = {m.name for m in program.models}
    demos = {p.name for p in program.params if p.kind == "demos"}
    llms = {l.name for l in program.llms}
    functions = {f.name for f in program.functions}
    for m in program.models:  # the compiler refuses these (promptc.secrets); an edited artifact may not
        if m.env and secret_variable(m.env):
            raise ArtifactError(
                f"malformed .pfc payload (model '{_clip(m.name, 60)}' reads its model string from "
                f"{_clip(m.env, 60)}, which is named like a secret)"
            )
    for l in program.llms:
        if l.model not in models:
            raise ArtifactError(f"malformed .pfc payload (llm '{_clip(l.name, 60)}' uses undeclared model '{_clip(l.model, 60)}')")
        if l.demos is not None and l.demos not in demos:
            raise ArtifactError(f"malformed .pfc payload (llm '{_clip(l.name, 60)}' uses undeclared demos param '{_clip(l.demos, 60)}')")
    for n in program.nodes:
        if (n.op == "llm" and n.target not in llms) or (n.op == "call" and n.target not in functions):
            raise ArtifactError(f"malformed .pfc payload (node '{_clip(n.name, 60)}' calls undeclared '{_clip(str(n.target), 60)}')")
    t = program.train
    if t is not None:
        if t.metric not in functions and t.metric not in llms:
            raise ArtifactError(f"malformed .pfc payload (train metric is undeclared '{_clip(t.metric, 60)}')")
        for role, name in (("teacher", t.teacher), ("backward", t.backward), ("optimizer", t.optimizer)):
            if name is not None and name not in models:
                raise ArtifactError(f"malformed .pfc payload (train {role} is undeclared model '{_clip(name, 60)}')")
        for s in t.supports:
            if not s.field or not s.nodes:
                raise ArtifactError(f"malformed .pfc payload (train supports '{_clip(s.value, 60)}' has no field or no value)")


# -- the file -----------------------------------------------------------------------------


def dumps(program: Program, extra: dict | None = None) -> bytes:
    payload = _pack({"program": program_to_data(program), "extra": dict(extra or {})})
    envelope = {
        "magic": MAGIC,
        "format": FORMAT,
        "source_hash": program.source_hash,
        "payload": payload,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return msgpack.packb(envelope, use_bin_type=True)


def loads(data: bytes, name: str = "<bytes>") -> tuple[Program, dict]:
    limit = max_bytes()
    if len(data) > limit:
        raise ArtifactError(f"{name}: {len(data)} bytes is larger than the .pfc size limit ({limit} bytes; set PROMPTC_MAX_PFC_BYTES to raise it)")
    if MAGIC.encode() not in data[:64]:
        raise ArtifactError(f"{name}: not a promptc artifact (.pfc)")
    try:
        # the envelope is a map of five scalars: nothing in it may be large but the payload
        env = msgpack.unpackb(
            data, raw=False, max_str_len=256, max_bin_len=len(data), max_array_len=8, max_map_len=16, max_ext_len=0
        )
    except Exception as e:  # msgpack raises several kinds for truncated / garbled data
        raise ArtifactError(f"{name}: truncated or corrupt .pfc ({type(e).__name__})") from None
    if not isinstance(env, dict) or env.get("magic") != MAGIC:
        raise ArtifactError(f"{name}: not a promptc artifact (.pfc)")
    version = env.get("format")
    if type(version) is int and 0 < version < FORMAT:
        raise ArtifactError(
            f"{name}: compiled by an older promptc (format {version}); recompile with `promptc compile`"
        )
    if version != FORMAT:
        raise ArtifactError(f"{name}: unsupported .pfc format {_clip(repr(version), 40)} (this promptc reads format {FORMAT})")
    payload = env.get("payload")
    if not isinstance(payload, bytes) or not isinstance(env.get("sha256"), str):
        raise ArtifactError(f"{name}: truncated or corrupt .pfc (no payload)")
    if hashlib.sha256(payload).hexdigest() != env["sha256"]:
        raise ArtifactError(f"{name}: checksum mismatch: the .pfc is corrupt or was modified")
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        body = _unpack(payload)
        _check_depth(body)
        if not isinstance(body, dict) or not isinstance(body.get("program"), dict):
            raise ArtifactError("malformed .pfc payload (no program)")
        try:
            program = program_from_data(body["program"])
        except CodecError as e:
            raise ArtifactError(f"malformed .pfc payload ({_clip(str(e))})") from None
        _check_references(program)
        try:
            verify(program)  # the IR invariants the runtime relies on (SSA, known ops, ...)
        except VerifyError as e:
            raise ArtifactError(f"malformed .pfc payload (invalid IR: {_clip(str(e))})") from None
        extra = body.get("extra") or {}
        if not isinstance(extra, dict):
            raise ArtifactError("malformed .pfc payload (its extra section is not a map)")
    except ArtifactError as e:
        raise ArtifactError(f"{name}: {e}") from None
    except Exception as e:
        raise ArtifactError(f"{name}: malformed .pfc payload ({type(e).__name__}: {_clip(str(e))})") from None
    finally:
        if gc_was_on:
            gc.enable()
    if program.source_hash != env.get("source_hash"):
        raise ArtifactError(f"{name}: malformed .pfc (source hash does not match its program)")
    return program, extra


def save(program: Program, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write `program` (and `extra`, e.g. training history) to `path`, atomically."""
    data = dumps(program, extra)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clip(text: str, n: int = 200) -> str:
    """One short line: an error message may quote hostile data."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def load_artifact(path: str | os.PathLike) -> tuple[Program, dict]:
    try:
        size = os.stat(path).st_size
        limit = max_bytes()
        if size > limit:
            raise ArtifactError(
                f"{path}: {size} bytes is larger than the .pfc size limit ({limit} bytes; set PROMPTC_MAX_PFC_BYTES to raise it)"
            )
        data = Path(path).read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror or e}") from None
    return loads(data, str(path))


def load_program(path: str | os.PathLike) -> Program:
    return load_artifact(path)[0]
