"""The embedded model's context size, from the GGUF's metadata header (no model needed:
the files here are written by the test)."""

from __future__ import annotations

import struct

import pytest

from promptc.runtime import local


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, kvs, version: int = 3):
    """A GGUF header with metadata `kvs`: (key, type code, packed value bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", version, 0, len(kvs))
    for key, kind, payload in kvs:
        out += _string(key) + struct.pack("<I", kind) + payload
    path.write_bytes(out)
    return path


def tokens_array(words):
    return struct.pack("<IQ", 8, len(words)) + b"".join(_string(w) for w in words)


def floats_array(n):
    return struct.pack("<IQ", 6, n) + struct.pack(f"<{n}f", *range(n))


def llama_header(tmp_path, ctx_kind=4, ctx=32768, name="m.gguf"):
    return write_gguf(tmp_path / name, [
        ("general.architecture", 8, _string("llama")),
        ("general.name", 8, _string("tiny")),
        ("tokenizer.ggml.tokens", 9, tokens_array(["a", "b", "<s>"])),  # arrays are skipped
        ("tokenizer.ggml.scores", 9, floats_array(3)),
        ("llama.block_count", 4, struct.pack("<I", 30)),
        ("llama.context_length", ctx_kind, struct.pack("<I" if ctx_kind == 4 else "<Q", ctx)),
    ])


def test_reads_the_trained_context_from_the_header(tmp_path):
    assert local.gguf_context_length(llama_header(tmp_path)) == 32768
    assert local.gguf_context_length(llama_header(tmp_path, ctx_kind=10, ctx=4096, name="q.gguf")) == 4096


def test_no_context_when_the_file_does_not_say(tmp_path):
    no_key = write_gguf(tmp_path / "a.gguf", [("general.architecture", 8, _string("llama"))])
    assert local.gguf_context_length(no_key) is None
    (tmp_path / "b.gguf").write_bytes(b"not a gguf at all")
    assert local.gguf_context_length(tmp_path / "b.gguf") is None
    full = llama_header(tmp_path).read_bytes()
    (tmp_path / "c.gguf").write_bytes(full[:60])  # truncated
    assert local.gguf_context_length(tmp_path / "c.gguf") is None
    assert local.gguf_context_length(tmp_path / "missing.gguf") is None
    assert local.gguf_context_length(write_gguf(tmp_path / "v1.gguf", [], version=1)) is None


def test_context_size_caps_the_trained_context_and_the_env_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv(local.ENV_CTX, raising=False)
    big = llama_header(tmp_path, ctx=131072)
    assert local.context_size(big) == local.MAX_CTX == 8192
    small = llama_header(tmp_path, ctx=4096, name="s.gguf")
    assert local.context_size(small) == 4096
    (tmp_path / "x.gguf").write_bytes(b"junk")
    assert local.context_size(tmp_path / "x.gguf") == local.N_CTX == 2048
    monkeypatch.setenv(local.ENV_CTX, "16384")
    assert local.context_size(big) == 16384
    monkeypatch.setenv(local.ENV_CTX, "lots")
    assert local.context_size(big) == 8192
