"""`promptc.codec`: attrs records <-> plain data by their annotations (what `.pfc` files hold)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import msgpack
import pytest
from attrs import frozen

from promptc import artifact
from promptc.codec import TAG, Codec, CodecError
from promptc.compiler import compile_file
from promptc.errors import Span
from promptc.ir import Program
from promptc.compiler import run_passes
from promptc.types import Type

from tests.test_artifact import rich_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/*.pflow"))


def _records(value: Any, seen: set[type]) -> None:
    """Every attrs record class that occurs in `value` (iteratively: loops nest)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if attrs.has(type(v)):
            seen.add(type(v))
            stack.extend(getattr(v, f.name) for f in attrs.fields(type(v)))
        elif isinstance(v, (tuple, list)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())


def test_every_ir_record_round_trips():
    programs = [rich_program(), run_passes(rich_program())]  # before unrolling (loops) and compiled
    programs += [compile_file(path) for path in EXAMPLES]
    assert len(programs) >= 8
    seen: set[type] = set()
    for p in programs:
        data = artifact.program_to_data(p)
        # plain data only: what msgpack writes, nothing that names a Python object
        again = artifact._unpack(artifact._pack(data))
        assert artifact.program_from_data(again) == p
        _records(p, seen)
    # every record class the codec may build was built and compared above
    assert set(artifact.CODEC.records.values()) == seen
    assert {"Program", "Node", "Loop", "GradNode", "TimeIndex", "Type", "Span", "Demo"} <= set(artifact.CODEC.records)


def test_records_are_field_maps_without_defaults():
    span = Span("f.pflow", 3, 1)
    c = Codec(Span)
    assert c.encode(span) == {"file": "f.pflow", "line": 3, "col": 1}
    assert c.decode({"file": "f.pflow", "line": 3, "col": 1, "end_col": 9}) == Span("f.pflow", 3, 1, None, 9)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"file": "f", "line": "3", "col": 1}, "Span.line is str, expected int"),
        ({"file": "f", "line": True, "col": 1}, "Span.line is bool, expected int"),
        ({"file": "f", "line": 3}, "needs field 'col'"),
        ({"file": "f", "line": 3, "col": 1, "__class__": "x"}, "Span has no field '__class__'"),
        ({"file": "f", "line": 3, "col": 1, 7: 1}, "Span has no field 7"),
        (["f", 3, 1], "Span is list, expected a map of Span"),
    ],
)
def test_wrong_data_is_refused_with_where(data, message):
    with pytest.raises(CodecError) as e:
        Codec(Span).decode(data)
    assert message in str(e.value)


# A union of records is tagged with the class name. The IR has none today; these stand in
# for any that it gains (gradient nodes), which need no codec code.
@frozen
class Leaf:
    text: str
    span: Span | None = None


@frozen
class Pair:
    left: "Leaf | Pair"
    right: "Leaf | Pair | None" = None


@frozen
class Tree:
    root: "Leaf | Pair"
    extra: dict[str, tuple[int, ...]] = attrs.field(factory=dict)
    notes: list[str] = attrs.field(factory=list)


def test_tagged_unions_round_trip():
    c = Codec(Tree)
    assert set(c.records) == {"Tree", "Leaf", "Pair", "Span"}
    tree = Tree(Pair(Leaf("a"), Pair(Leaf("b", Span("x", 1, 2)))), {"k": (1, 2)}, ["n"])
    data = c.encode(tree)
    assert data["root"][TAG] == "Pair" and data["root"]["left"] == {TAG: "Leaf", "text": "a"}
    assert c.decode(data) == tree


@pytest.mark.parametrize("tag", ["Tree", "Program", "os.system", "Leaf ", None, 3, ["Leaf"]])
def test_unknown_record_tags_are_refused(tag):
    c = Codec(Tree)
    data = {"root": {TAG: tag, "text": "a"}}
    with pytest.raises(CodecError, match=r"Tree.root has unknown record tag .* \(expected one of Leaf, Pair\)"):
        c.decode(data)
    with pytest.raises(CodecError, match="unknown record tag"):
        c.decode({"root": {"text": "a"}})  # no tag at all


def test_containers_are_checked():
    c = Codec(Tree)
    leaf = {TAG: "Leaf", "text": "a"}
    with pytest.raises(CodecError, match=r"Tree.extra has a key of type int, expected str"):
        c.decode({"root": leaf, "extra": {1: []}})
    with pytest.raises(CodecError, match=r"Tree.extra\['k'\]\[1\] is str, expected int"):
        c.decode({"root": leaf, "extra": {"k": [1, "2"]}})
    with pytest.raises(CodecError, match=r"Tree.notes is dict, expected a list"):
        c.decode({"root": leaf, "notes": {}})
    with pytest.raises(CodecError, match=r"cannot encode a str as Leaf \| Pair$"):
        c.encode(Tree("not a record"))  # type: ignore[arg-type]


def test_checks_run_on_each_record_built():
    c = Codec(Type, {Type: lambda t: None if t.kind != "bad" else "is bad"})
    good = {"kind": "list", "elem": {"kind": "text"}}
    assert c.decode(good) == Type("list", Type("text"))
    with pytest.raises(CodecError, match=r"Type.elem is bad"):
        c.decode({"kind": "list", "elem": {"kind": "bad"}})


def test_decoding_imports_nothing(tmp_path):
    """A fresh process loads a .pfc with every import refused from the moment it starts."""
    path = tmp_path / "m.pfc"
    artifact.save(run_passes(rich_program()), path, {"t": (1, (2,))})
    script = f"""
import builtins, importlib, sys
from promptc import artifact
before = set(sys.modules)
real = builtins.__import__
def refuse(name, *args, **kwargs):
    if name not in sys.modules:
        raise AssertionError("imported " + name)
    return real(name, *args, **kwargs)
builtins.__import__ = refuse
importlib.import_module = lambda name, *a: refuse(name)
program, extra = artifact.load_artifact({str(path)!r})
builtins.__import__ = real
assert set(sys.modules) == before, set(sys.modules) - before
print(len(program.nodes), extra)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == str(len(run_passes(rich_program()).nodes))
    assert "{'t': (1, (2,))}" in r.stdout


def test_codec_refuses_unreachable_classes():
    c = Codec(Span)
    with pytest.raises(TypeError, match="not a record reachable"):
        c.decode({}, Program)


def test_the_artifact_allow_list_is_the_ir():
    # what a .pfc may build: the IR's records and the two records they hold (types, spans)
    modules = {cls.__module__ for cls in artifact.CODEC.records.values()}
    assert modules == {"promptc.ir", "promptc.types", "promptc.errors"}
    assert artifact.CODEC.records["Span"] is Span and artifact.CODEC.records["Type"] is Type
