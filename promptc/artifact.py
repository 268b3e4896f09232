"""`.pfc` artifacts: a compiled Program (and the trainer's extra data) as msgpack.

Layout: an envelope map ``{"magic": "promptc-pfc", "format": 1, "source_hash": ...,
"payload": bytes, "sha256": hex digest of payload}``; the payload is msgpack of
``{"program": <plain data>, "extra": {...}}``. Every IR record has an explicit converter
to and from plain data (`program_to_data` / `program_from_data`): loading builds records
from lists, dicts and scalars only — no pickle, no eval, no import, no code runs (functions
are bound by name later, by whoever runs the program). Tuples inside free values (const
targets, demos, extra) are kept as tuples with a msgpack extension type, so a round trip
gives back an equal Program.

Errors are `ArtifactError` with a one-line message: not a .pfc, unsupported format
version, truncated or corrupt data, checksum mismatch (tampered), malformed payload.

Hostile files are refused before they cost much (the checksum proves integrity, not
origin, so a crafted file can carry a valid one):

- a file larger than `max_bytes()` (64 MiB, or `PROMPTC_MAX_PFC_BYTES`) is not read;
- msgpack's own limits (`max_str_len`, `max_array_len`, ...) are set from the size of the
  buffer being decoded; the envelope is a map of five scalars and is decoded with tight
  limits; the payload may hold at most one list or map per `_BYTES_PER_CONTAINER` bytes
  (compiled examples use one per 20 to 36 bytes), which bounds the memory a decode can take
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

from promptc.errors import Span
from promptc.ir import (
    Demo,
    Function,
    GradNode,
    LlmDef,
    Loop,
    Message,
    Model,
    Node,
    Param,
    Program,
    TimeIndex,
    TrainSpec,
    Workflow,
    check_model_option,
)
from promptc.types import SCALARS, Type
from promptc.verify import VerifyError, verify

MAGIC = "promptc-pfc"
FORMAT = 1
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


def _span(s: Span | None) -> list | None:
    return None if s is None else [s.file, s.line, s.col, s.end_line, s.end_col]


def _span_in(d: list | None) -> Span | None:
    return None if d is None else Span(*d)


def _type(t: Type | None) -> dict | None:
    return None if t is None else t.to_data()


def _type_in(d: dict | None) -> Type | None:
    return None if d is None else Type.from_data(d)


def _typed(pairs) -> list:
    return [[n, t.to_data()] for n, t in pairs]


def _typed_in(d) -> tuple:
    return tuple((n, Type.from_data(t)) for n, t in d)


def _time(t: TimeIndex | None) -> list | None:
    return None if t is None else [t.loop, t.step]


def _time_in(d) -> TimeIndex | None:
    return None if d is None else TimeIndex(d[0], d[1])


def _loop(lp: Loop | None) -> dict | None:
    if lp is None:
        return None
    return {
        "label": lp.label, "kind": lp.kind, "bound": lp.bound, "index": lp.index,
        "carried": [list(c) for c in lp.carried], "body": [_node(n) for n in lp.body],
        "updates": [list(u) for u in lp.updates], "brk": lp.brk, "results": [list(r) for r in lp.results],
        "items": lp.items, "item": lp.item,
    }


def _loop_in(d: dict | None) -> Loop | None:
    if d is None:
        return None
    return Loop(
        d["label"], d["kind"], d["bound"], d["index"], tuple(tuple(c) for c in d["carried"]),
        tuple(_node_in(n) for n in d["body"]), tuple(tuple(u) for u in d["updates"]), d["brk"],
        tuple(tuple(r) for r in d["results"]), d.get("items"), d.get("item"),
    )


def _node(n: Node) -> dict:
    return {
        "name": n.name, "op": n.op, "args": list(n.args), "target": n.target, "type": _type(n.type),
        "span": _span(n.span), "time": _time(n.time), "guard": n.guard, "loop": _loop(n.loop),
    }


def _node_in(d: dict) -> Node:
    return Node(
        d["name"], d["op"], tuple(d["args"]), d["target"], _type_in(d["type"]), _span_in(d["span"]),
        _time_in(d["time"]), d["guard"], _loop_in(d["loop"]),
    )


def _param(p: Param) -> dict:
    return {
        "name": p.name, "kind": p.kind, "trainable": p.trainable, "role": p.role, "text": p.text,
        "demos": [[[list(kv) for kv in d.inputs], d.output] for d in p.demos],
        "max_demos": p.max_demos, "span": _span(p.span), "peers": list(p.peers), "nearest": p.nearest,
    }


def _param_in(d: dict) -> Param:
    demos = tuple(Demo(tuple(tuple(kv) for kv in inputs), output) for inputs, output in d["demos"])
    return Param(
        d["name"], d["kind"], d["trainable"], d["role"], d["text"], demos, d["max_demos"],
        _span_in(d["span"]), tuple(d["peers"]), int(d.get("nearest", 0)),
    )


def _model_in(m: list) -> Model:
    # [name, default, env, span, options]; artifacts written before model options had 4 items
    name, default, env, span = m[:4]
    options = tuple((str(k), check_model_option(str(k), v)) for k, v in (m[4] if len(m) > 4 else ()))
    return Model(name, default, env, _span_in(span), options)


def program_to_data(p: Program) -> dict:
    """The Program as plain msgpack-able data (the inverse of `program_from_data`)."""
    wf = p.workflow
    return {
        "file": p.file,
        "source_hash": p.source_hash,
        "models": [[m.name, m.default, m.env, _span(m.span), [list(o) for o in m.options]] for m in p.models],
        "params": [_param(x) for x in p.params],
        "functions": [
            [f.name, f.module, f.attr, f.doc, _typed(f.params), _type(f.returns), _span(f.span)] for f in p.functions
        ],
        "llms": [
            {
                "name": l.name, "params": _typed(l.params), "returns": _type(l.returns), "model": l.model,
                "messages": [[m.role, m.template, _span(m.span)] for m in l.messages],
                "demos": l.demos, "uses": list(l.uses), "span": _span(l.span),
            }
            for l in p.llms
        ],
        "workflow": {
            "name": wf.name, "inputs": _typed(wf.inputs), "returns": _type(wf.returns),
            "nodes": [_node(n) for n in wf.nodes], "output": wf.output, "span": _span(wf.span),
            "output_span": _span(wf.output_span),
        },
        "train": None if p.train is None else [
            p.train.workflow, p.train.metric, p.train.answer, p.train.teacher, p.train.backward,
            p.train.optimizer, _span(p.train.span),
        ],
        "backward": [[g.name, g.op, g.node, list(g.args), g.rule, list(g.feeds), _time(g.time), _span(g.span), g.llm, g.function, g.doc, g.cond, list(g.branches), g.variable] for g in p.backward],
        "passes": list(p.passes),
    }


def program_from_data(d: dict) -> Program:
    wf = d["workflow"]
    t = d["train"]
    return Program(
        file=d["file"],
        source_hash=d["source_hash"],
        models=tuple(_model_in(m) for m in d["models"]),
        params=tuple(_param_in(x) for x in d["params"]),
        functions=tuple(
            Function(n, mod, attr, doc, _typed_in(ps), _type_in(r), _span_in(s))
            for n, mod, attr, doc, ps, r, s in d["functions"]
        ),
        llms=tuple(
            LlmDef(
                l["name"], _typed_in(l["params"]), Type.from_data(l["returns"]), l["model"],
                tuple(Message(r, tpl, _span_in(s)) for r, tpl, s in l["messages"]),
                l["demos"], tuple(l["uses"]), _span_in(l["span"]),
            )
            for l in d["llms"]
        ),
        workflow=Workflow(
            wf["name"], _typed_in(wf["inputs"]), Type.from_data(wf["returns"]),
            tuple(_node_in(n) for n in wf["nodes"]), wf["output"], _span_in(wf["span"]),
            _span_in(wf.get("output_span")),
        ),
        train=None if t is None else TrainSpec(t[0], t[1], t[2], t[3], t[4], t[5], _span_in(t[6])),
        backward=tuple(GradNode(g[0], g[1], g[2], tuple(g[3]), g[4], tuple(g[5]), _time_in(g[6]), _span_in(g[7]), *g[8:12], tuple(g[12]), g[13]) for g in d["backward"]),
        passes=tuple(d["passes"]),
    )


# -- checking a decoded program ---------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        import typing

        found = typing.get_type_hints(cls)
        _HINTS[cls] = found
    return found


_HINTS: dict[type, dict[str, Any]] = {}


def _valid_type(t: Type) -> bool:
    """The shape rules of one `Type` record (its parts are checked by the walk)."""
    if t.kind in SCALARS:
        return t.elem is None and not t.fields and not t.labels
    if t.kind == "list":
        return t.elem is not None and not t.fields and not t.labels
    if t.kind == "record":
        return t.elem is None and not t.labels
    if t.kind == "enum":
        return t.elem is None and not t.fields and bool(t.labels)
    return False


def _check_records(program: Program) -> None:
    """Every field of every record holds a value of its declared type.

    A crafted payload decodes to lists, maps and scalars of any type; the records are
    built from them without looking. This makes sure that, say, a param's role is a `str`
    before `inspect` prints it or the runtime renders it. A fast check (checkers compiled
    once per annotation) runs first; only when it fails does `_diagnose` walk the program
    again to name the field.
    """
    if not _checker(Program)(program):
        _diagnose(program)
        raise ArtifactError("malformed .pfc payload (a field has the wrong type)")  # pragma: no cover


_CHECKERS: dict[Any, Any] = {}
# record class -> (a rule its values keep beyond their field types, what a breach is called)
_SEMANTIC: dict[type, tuple[Any, Any]] = {
    Type: (_valid_type, lambda t: f"is not a valid type: kind {t.kind!r}"),
    Param: (lambda p: p.kind in ("prompt", "demos"), lambda p: f"has unknown kind {p.kind!r}"),
    Message: (lambda m: m.role in ("system", "user", "assistant"), lambda m: f"has unknown role {m.role!r}"),
}


def _checker(want: Any):
    """A predicate `value -> bool` for the annotation `want`, built once and cached."""
    import types as pytypes
    import typing

    import attrs

    found = _CHECKERS.get(want)
    if found is not None:
        return found
    origin = typing.get_origin(want)
    if want is Any:
        def check(v):
            return True
    elif origin in (typing.Union, pytypes.UnionType):
        (inner_type,) = [o for o in typing.get_args(want) if o is not type(None)]  # the IR's unions are `X | None`
        inner = _checker(inner_type)

        def check(v):
            return v is None or inner(v)
    elif origin is tuple:
        args = typing.get_args(want)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _checker(args[0])

            def check(v):
                return type(v) is tuple and all(map(item, v))
        else:
            items = [_checker(a) for a in args]

            def check(v):
                return type(v) is tuple and len(v) == len(items) and all(c(x) for c, x in zip(items, v))
    elif attrs.has(want):
        names = [f.name for f in attrs.fields(want)]
        fields: list = []  # filled on first use: records refer to each other (Node -> Loop -> Node)
        semantic = _SEMANTIC.get(want, (None,))[0]

        def check(v):
            if type(v) is not want:
                return False
            if not fields:
                hints = _hints(want)
                fields.extend((n, _checker(hints[n])) for n in names)
            for n, c in fields:
                if not c(getattr(v, n)):
                    return False
            return semantic is None or semantic(v)
    elif want is int:
        def check(v):
            return type(v) is int
    else:
        def check(v):
            return isinstance(v, want)
    _CHECKERS[want] = check
    return check


def _diagnose(program: Program) -> None:
    """Raise an `ArtifactError` naming the first field of `program` that has the wrong type."""
    import types as pytypes
    import typing

    import attrs

    stack: list[tuple[Any, Any, str]] = [(program, Program, "program")]
    while stack:
        value, want, where = stack.pop()
        if want is Any:
            continue
        origin = typing.get_origin(want)
        if origin in (typing.Union, pytypes.UnionType):
            options = typing.get_args(want)
            if value is None and type(None) in options:
                continue
            (want,) = [o for o in options if o is not type(None)]
            origin = typing.get_origin(want)
        if origin is tuple:
            if not isinstance(value, tuple):
                raise ArtifactError(f"malformed .pfc payload ({where} is {type(value).__name__}, expected a list)")
            args = typing.get_args(want)
            if len(args) == 2 and args[1] is Ellipsis:
                stack.extend((v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            elif len(args) != len(value):
                raise ArtifactError(f"malformed .pfc payload ({where} has {len(value)} items, expected {len(args)})")
            else:
                stack.extend((v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            continue
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ArtifactError(f"malformed .pfc payload ({where} is {type(value).__name__}, expected {want.__name__})")
        rule, breach = _SEMANTIC.get(want, (None, None))
        if rule is not None and not rule(value):
            raise ArtifactError(f"malformed .pfc payload ({where} {breach(value)})")
        if attrs.has(want):
            hints = _hints(want)
            label = want.__name__
            stack.extend((getattr(value, f.name), hints[f.name], f"{label}.{f.name}") for f in attrs.fields(want))


def _check_references(program: Program) -> None:
    """Every name a record uses is declared: what the runtime looks up, it finds.

    (`verify` checks the nodes' own references only for programs past the resolve pass; a
    crafted artifact can claim any pass list.)
    """
    models = {m.name for m in program.models}
    demos = {p.name for p in program.params if p.kind == "demos"}
    llms = {l.name for l in program.llms}
    functions = {f.name for f in program.functions}
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
        for role, name in (("teacher", t.teacher), ("backward", t.backward), ("optimizer", t.optimizer)):
            if name is not None and name not in models:
                raise ArtifactError(f"malformed .pfc payload (train {role} is undeclared model '{_clip(name, 60)}')")


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
    if env.get("format") != FORMAT:
        raise ArtifactError(f"{name}: unsupported .pfc format {env.get('format')!r} (this promptc reads format {FORMAT})")
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
        program = program_from_data(body["program"])
        _check_records(program)
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
