"""Robustness of `.pfc` loading: every crafted file loads or gives one clean `ArtifactError`,
within time and memory bounds. Classes: truncation, bit flips (with the checksum left
stale or recomputed, as an attacker would), bombs, deep nesting, odd `extra` sections.
A few hundred cases by default; `PROMPTC_FUZZ_SCALE=10` runs ten times as many."""

from __future__ import annotations

import hashlib
import os

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptc import artifact
from promptc.artifact import ArtifactError
from promptc.cli.inspect import _Malformed, _check_extra
from tests.bounds import bounded
from tests.test_artifact import rich_program
from tests.test_artifact_hostile import envelope, program

SCALE = max(1, int(os.environ.get("PROMPTC_FUZZ_SCALE", "1") or 1))
GOOD = [
    artifact.dumps(program(), {"history": [{"step": 1, "proposals": [], "accepted": ["instr"]}], "scores": {"best_val": 0.5}}),
    artifact.dumps(rich_program(), {"t": (1, (2, 3))}),
]


def _load_bounded(data: bytes) -> None:
    """loads() returns or raises ArtifactError, in bounded time and memory; the message is one line."""
    with bounded(10, 64 * len(data) + 64 * 1024 * 1024):
        try:
            _program, extra = artifact.loads(data, "fuzz.pfc")
        except ArtifactError as e:
            msg = str(e)
            assert msg.startswith("fuzz.pfc: ") and "\n" not in msg and len(msg) < 600
        else:
            try:
                _check_extra(extra)  # what inspect does before showing anything
            except _Malformed:
                pass


def _resealed(payload: bytes, base: bytes) -> bytes:
    """`payload` in an envelope with a valid checksum and the base file's source hash."""
    env = msgpack.unpackb(base)
    return envelope(payload, env["source_hash"])


def _payload(base: bytes) -> bytes:
    return msgpack.unpackb(base)["payload"]


def _nest(depth: int, kind: str) -> bytes:
    if kind == "tuples":
        inner = msgpack.packb([])
        for _ in range(depth):
            inner = msgpack.packb(msgpack.ExtType(1, inner))
        return inner
    if kind == "lists":
        return b"\x91" * depth + b"\xc0"
    return b"\x81\xa1k" * depth + b"\xc0"  # maps


def _with_extra(base: bytes, extra_packed: bytes) -> bytes:
    body = msgpack.unpackb(_payload(base), strict_map_key=False, ext_hook=lambda c, d: msgpack.ExtType(c, d))
    prog = msgpack.packb(body["program"], use_bin_type=True)
    return _resealed(b"\x82" + msgpack.packb("program") + prog + msgpack.packb("extra") + extra_packed, base)


_ODD = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=20) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["history", "scores", "source_params", "filtered", "step", "proposals", "text", "param", "accepted", "best"]), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def crafted(draw):
    base = draw(st.sampled_from(GOOD))
    kind = draw(st.sampled_from(["truncate", "flip", "flip-resealed", "bomb", "nest", "extra", "garbage"]))
    if kind == "truncate":
        return base[: draw(st.integers(0, len(base) - 1))]
    if kind in ("flip", "flip-resealed"):
        data = bytearray(base if kind == "flip" else _payload(base))
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(data) if kind == "flip" else _resealed(bytes(data), base)
    if kind == "bomb":
        n = draw(st.integers(10_000, 2_000_000))
        item = draw(st.sampled_from([b"\x90", b"\x80", b"\xc0", b"\xa0", b"\x91\x90"]))
        count = n // len(item)
        header = b"\xdd" + count.to_bytes(4, "big") if draw(st.booleans()) else b"\xdd" + (2**32 - 1).to_bytes(4, "big")
        return _with_extra(base, header + item * count)
    if kind == "nest":
        return _with_extra(base, _nest(draw(st.integers(10, 3000)), draw(st.sampled_from(["tuples", "lists", "maps"]))))
    if kind == "extra":
        return _with_extra(base, msgpack.packb(draw(_ODD), use_bin_type=True))
    return draw(st.binary(max_size=200)) + (artifact.MAGIC.encode() if draw(st.booleans()) else b"")


@settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(crafted())
def test_crafted_pfc_loads_or_fails_cleanly(data):
    _load_bounded(data)


def test_good_files_still_load():
    for data in GOOD:
        artifact.loads(data)


def test_checksum_is_checked_before_decoding():
    data = bytearray(GOOD[0])
    data[-80] ^= 0xFF  # inside the payload
    try:
        artifact.loads(bytes(data))
    except ArtifactError as e:
        assert "checksum mismatch" in str(e) or "corrupt" in str(e)
    else:  # pragma: no cover
        raise AssertionError("a flipped payload byte loaded")


def test_sha256_of_payload_is_what_is_checked():
    payload = _payload(GOOD[0])
    assert msgpack.unpackb(GOOD[0])["sha256"] == hashlib.sha256(payload).hexdigest()
