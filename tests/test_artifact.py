from pathlib import Path

import msgpack
import pytest
from attrs import evolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptc import artifact
from promptc.artifact import ArtifactError, dumps, load_artifact, load_program, loads, save
from promptc.ir import Demo
from promptc.compiler import run_passes
from promptc.types import FLOAT, INT, TEXT, enum, list_of, record

from promptc.build import ProgramBuilder
from tests.passes.programs import trec
from tests.passes.test_unroll import nested


def rich_program():
    """Loops, records, enums, demos, a train spec, tuples and dicts in constants."""
    b = ProgramBuilder("/some/dir/x.pflow")
    b.model("task", "local/default", env="PROMPTC_TASK_MODEL")
    b.param("instr", trainable=True, text="Think {{step}} by step.\n", role="the instruction")
    b.param("shots", kind="demos", trainable=True, max_demos=2,
            demos=(Demo((("q", "Who?"),), "HUM"), Demo((("q", ("a", 1)),), {"k": [1.5, None, True]})))
    b.function("concat", params=[("a", TEXT), ("b", TEXT)], returns=TEXT)
    b.function("exact_match", module="std.metrics")
    b.llm("f", [("q", TEXT)], record(label=enum("HUM", "LOC"), score=FLOAT), system="{instr}", user="{q}", demos="shots")
    w = b.workflow("wf", [("q", TEXT), ("k", list_of(INT))], TEXT)
    q = w.input("q")
    w.input("k")
    w.const((1, "two", (3.0,)), name="tup")
    w.const({"a": [1, 2], "b": None}, name="dct")
    lp = w.loop("act", "max", 3, carried={"q": q}, index=True)
    r = lp.llm("f", lp.ph("q"), name="r")
    lab = lp.field(r, "label", name="lab")
    x = lp.call("concat", lp.ph("q"), lab, name="x")
    lp.update("q", x)
    lp.brk(lp.prim("eq", lab, lp.const("LOC", name="loc"), name="stop"))
    w.ret(lp.end()["q"])
    b.train_spec("exact_match", teacher="task")
    return b.build()


@pytest.mark.parametrize("make", [trec, rich_program, lambda: nested(2, 3, 4).build()])
@pytest.mark.parametrize("compiled", [False, True])
def test_round_trip(tmp_path, make, compiled):
    p = make()
    if compiled:
        p = run_passes(p)
    path = tmp_path / "a.pfc"
    extra = {"history": [{"step": 1, "score": 0.5, "pair": (1, 2)}], "best": None}
    save(p, path, extra)
    q, got_extra = load_artifact(path)
    assert q == p
    assert got_extra == extra
    assert load_program(path) == p


def test_compiled_program_has_loops_unrolled_with_guards():
    p = run_passes(rich_program())
    assert any(n.guard for n in p.nodes) and p.backward
    assert loads(dumps(p))[0] == p


def test_loading_imports_nothing(tmp_path, monkeypatch):
    p = run_passes(trec())
    data = dumps(p)
    import promptc.bind

    monkeypatch.setattr(promptc.bind, "load_callable", lambda *a, **k: pytest.fail("loading bound a function"))
    assert loads(data)[0] == p


def test_not_a_pfc(tmp_path):
    path = tmp_path / "x.pfc"
    path.write_text("workflow x() -> text {}")
    with pytest.raises(ArtifactError, match="not a promptc artifact"):
        load_program(path)
    path.write_bytes(msgpack.packb({"hello": 1}))
    with pytest.raises(ArtifactError, match="not a promptc artifact"):
        load_program(path)
    with pytest.raises(ArtifactError, match="cannot read"):
        load_program(tmp_path / "missing.pfc")


def _envelope(p, **changes):
    env = msgpack.unpackb(dumps(p), raw=False)
    env.update(changes)
    return msgpack.packb(env, use_bin_type=True)


def test_wrong_format_version():
    with pytest.raises(ArtifactError, match=r"unsupported \.pfc format 3 \(this promptc reads format 2\)"):
        loads(_envelope(trec(), format=3))
    with pytest.raises(ArtifactError, match=r"unsupported \.pfc format 'x'"):
        loads(_envelope(trec(), format="x"))


def test_an_older_format_asks_for_a_recompile():
    # written by the format-1 code (positional converters, up to f0af8b3)
    old = Path(__file__).parent / "data" / "format1.pfc"
    assert msgpack.unpackb(old.read_bytes())["format"] == 1
    with pytest.raises(ArtifactError) as e:
        load_artifact(old)
    assert str(e.value) == f"{old}: compiled by an older promptc (format 1); recompile with `promptc compile`"


def test_tampered_payload_fails_the_checksum():
    p = trec()
    env = msgpack.unpackb(dumps(p), raw=False)
    tampered = env["payload"].replace(b"Classify the question.", b"Classify the QUESTION.")
    assert tampered != env["payload"]
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        loads(_envelope(p, payload=tampered))


def test_consistent_but_malformed_payload():
    import hashlib

    payload = msgpack.packb({"program": {"file": "x"}, "extra": {}})
    with pytest.raises(ArtifactError, match="malformed .pfc payload"):
        loads(_envelope(trec(), payload=payload, sha256=hashlib.sha256(payload).hexdigest()))


DATA = dumps(run_passes(trec()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(DATA) - 1))
def test_truncated_files_give_clear_errors(cut):
    with pytest.raises(ArtifactError) as e:
        loads(DATA[:cut])
    assert "\n" not in str(e.value)


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, len(DATA) - 1), byte=st.integers(0, 255))
def test_any_flipped_byte_is_detected_or_harmless(pos, byte):
    data = bytearray(DATA)
    if data[pos] == byte:
        return
    data[pos] = byte
    try:
        program, _ = loads(bytes(data))
    except ArtifactError as e:
        assert "\n" not in str(e)
        return
    # a change the checksum cannot see must be in the envelope's own fields
    assert program == loads(DATA)[0]


def test_unsaveable_value():
    p = trec()
    bad = p.with_nodes([*p.nodes, evolve(p.nodes[0], name="obj", op="const", target=object())])
    with pytest.raises(ArtifactError, match="cannot save a value of type object"):
        dumps(bad)
