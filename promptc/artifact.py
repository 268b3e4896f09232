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
"""

from __future__ import annotations

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
    GradRule,
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
from promptc.types import Type

MAGIC = "promptc-pfc"
FORMAT = 1
_TUPLE = 1  # msgpack ext code for a tuple


class ArtifactError(Exception):
    """A .pfc file that cannot be loaded (or a value that cannot be saved)."""


# -- free values (const targets, demos, extra) -----------------------------------------


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    if isinstance(obj, float):  # a float subclass, e.g. a metric's Score: saved as its number
        return float(obj)
    raise ArtifactError(f"cannot save a value of type {type(obj).__name__} in a .pfc")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        return tuple(_unpack(data))
    raise ArtifactError(f"unknown msgpack extension type {code}")


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook)


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
        "backward": [[g.node, g.rule, list(g.feeds), _time(g.time), g.note] for g in p.backward],
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
        backward=tuple(GradRule(n, r, tuple(f), _time_in(tm), note) for n, r, f, tm, note in d["backward"]),
        passes=tuple(d["passes"]),
    )


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
    if MAGIC.encode() not in data[:64]:
        raise ArtifactError(f"{name}: not a promptc artifact (.pfc)")
    try:
        env = msgpack.unpackb(data, raw=False)
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
    try:
        body = _unpack(payload)
        program = program_from_data(body["program"])
        extra = body.get("extra") or {}
    except ArtifactError:
        raise
    except Exception as e:
        raise ArtifactError(f"{name}: malformed .pfc payload ({type(e).__name__}: {e})") from None
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


def load_artifact(path: str | os.PathLike) -> tuple[Program, dict]:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror or e}") from None
    return loads(data, str(path))


def load_program(path: str | os.PathLike) -> Program:
    return load_artifact(path)[0]
