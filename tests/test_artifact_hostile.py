"""Crafted `.pfc` files with valid checksums: each is refused with one clean `ArtifactError`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import msgpack
import pytest

import promptc
from promptc import artifact
from promptc.artifact import ArtifactError, dumps, loads
from promptc.compiler import compile_source

SRC = 'model m = "scripted/echo"\nllm f(q: text) -> text via m { user "{q}" }\nworkflow w(q: text) -> text { return f(q) }\n'


def program():
    return compile_source(SRC, "w.pflow")


def envelope(payload: bytes, source_hash: str) -> bytes:
    """A well-formed envelope around any payload, with a valid checksum (what an attacker can make)."""
    return msgpack.packb(
        {"magic": artifact.MAGIC, "format": artifact.FORMAT, "source_hash": source_hash,
         "payload": payload, "sha256": hashlib.sha256(payload).hexdigest()},
        use_bin_type=True,
    )


def with_extra(extra_packed: bytes) -> bytes:
    """A valid program whose `extra` value is the raw msgpack `extra_packed`."""
    p = program()
    prog = msgpack.packb(artifact.program_to_data(p), use_bin_type=True)
    body = b"\x82" + msgpack.packb("program") + prog + msgpack.packb("extra") + extra_packed
    return envelope(body, p.source_hash)


def nested_tuples(depth: int) -> bytes:
    inner = msgpack.packb([])
    for _ in range(depth):
        inner = msgpack.packb(msgpack.ExtType(1, inner))
    return msgpack.packb({"x": msgpack.ExtType(1, inner)})


def test_nested_tuples_are_refused_without_crashing_the_process(tmp_path):
    # the reproduction: 200 nested tuples killed `promptc inspect` with SIGSEGV
    path = tmp_path / "deep.pfc"
    path.write_bytes(with_extra(nested_tuples(200)))
    with pytest.raises(ArtifactError, match="tuples nested more than"):
        artifact.load_artifact(path)
    r = subprocess.run([sys.executable, "-m", "promptc", "inspect", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "tuples nested more than" in r.stderr


def test_shallow_tuples_still_round_trip():
    p = program()
    extra = {"t": ((((1, 2),),),)}
    assert loads(dumps(p, extra))[1] == extra


def test_deep_lists_are_refused():
    pad = msgpack.packb("x" * 16)
    deep = (b"\x92" + pad) * 600 + b"\xc0"  # [pad, [pad, [... nil]]] 600 deep
    with pytest.raises(ArtifactError, match="nested more than"):
        loads(with_extra(deep))


def test_container_bomb_is_refused_quickly_and_small():
    # 2 MB of empty arrays inside one array: msgpack would build 2 million lists
    n = 2_000_000
    bomb = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    t0 = time.perf_counter()
    with pytest.raises(ArtifactError, match="far more lists and maps"):
        loads(with_extra(bomb))
    assert time.perf_counter() - t0 < 5


def test_oversized_file_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.pfc"
    path.write_bytes(dumps(program()))
    monkeypatch.setenv("PROMPTC_MAX_PFC_BYTES", "100")
    with pytest.raises(ArtifactError, match="larger than the .pfc size limit"):
        artifact.load_artifact(path)


def test_envelope_with_huge_fields_is_refused():
    data = msgpack.packb({"magic": artifact.MAGIC, "format": 1, "source_hash": "x" * 10_000, "payload": b"", "sha256": ""})
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        loads(data)


@pytest.mark.parametrize(
    "extra",
    [msgpack.packb([1, 2]), msgpack.packb("text"), msgpack.packb(msgpack.ExtType(7, b"x"))],
    ids=["list", "string", "unknown-ext"],
)
def test_malformed_extra_is_an_artifact_error(extra):
    with pytest.raises(ArtifactError):
        loads(with_extra(extra))


def resealed(change) -> bytes:
    """The program's codec data changed by `change(data)`, in an envelope with a valid checksum."""
    p = program()
    data = artifact.program_to_data(p)
    change(data)
    return envelope(artifact._pack({"program": data, "extra": {}}), p.source_hash)


def _node(data, op):
    return next(n for n in data["workflow"]["nodes"] if n["op"] == op)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: _node(d, "input").update(target=["q"]), r"node 'q' \(input\) has a target of type list"),
        (lambda d: _node(d, "llm").update(args=[]), r"calls llm 'f' with 0 argument\(s\); it takes 1"),
        (lambda d: _node(d, "llm").update(op="index", target=0, args=[]), r"\(index\) reads 0 argument\(s\); index nodes read 1"),
        (lambda d: _node(d, "llm").update(op="prim", target="and", args=["q"]), r"applies 'and' to 1 operand\(s\); it takes 2"),
        (lambda d: _node(d, "llm").update(op="const", target=b"\x00", args=[]), "target of type bytes"),
        (lambda d: d["functions"].append({"name": "g", "module": "x\x00.py", "attr": "g"}), "no usable module name"),
        (lambda d: d["functions"].append({"name": "g", "module": "x.py", "attr": "__class__"}), "not a function's name"),
        (lambda d: d.update(train={"workflow": "w", "metric": "ghost"}), "train metric is undeclared 'ghost'"),
    ],
    ids=["input-target-list", "llm-no-args", "index-no-args", "and-one-arg", "const-bytes", "module-nul", "dunder-attr",
         "metric"],
)
def test_mutants_through_the_codec_are_refused_at_load_with_one_line(tmp_path, change, message):
    # the examples: each crashed `promptc run` with IndexError / TypeError
    path = tmp_path / "m.pfc"
    path.write_bytes(resealed(change))
    with pytest.raises(ArtifactError, match=message) as e:
        promptc.load(path)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(path))
