"""The trained context of a GGUF file, read from its metadata header (no model loaded).

The embedded model (promptc.runtime.local) loads a GGUF with the context it was trained
for; llama.cpp calls it `n_ctx_train` and stores it as `<general.architecture>.context_length`
in the header's key-value section (GGUF v2/v3: little-endian, typed values, arrays
skipped by their element size).
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_context_length(path: Path) -> int | None:
    """The trained context of a GGUF (`<general.architecture>.context_length`), read from
    the file's metadata header without loading the model; None when the file is not a
    GGUF v2/v3 or has no such key."""
    def read(f, fmt: str):
        size = struct.calcsize(fmt)
        data = f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack(fmt, data)[0]

    def string(f) -> str:
        n = read(f, "<Q")
        if n > 1 << 20:
            raise ValueError("implausible GGUF string length")
        return f.read(n).decode("utf-8", "replace")

    def value(f, kind: int):
        if kind in _GGUF_SCALARS:
            return read(f, _GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return string(f)
        if kind == _GGUF_ARRAY:
            elem, count = read(f, "<I"), read(f, "<Q")
            if elem in _GGUF_SCALARS:
                f.seek(count * struct.calcsize(_GGUF_SCALARS[elem]), 1)
            else:
                for _ in range(count):
                    value(f, elem)
            return None
        raise ValueError(f"unknown GGUF value type {kind}")

    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF" or read(f, "<I") not in (2, 3):
                return None
            read(f, "<Q")  # tensor count
            found: dict[str, Any] = {}
            for _ in range(read(f, "<Q")):
                key = string(f)
                found[key] = value(f, read(f, "<I"))
                arch = found.get("general.architecture")
                if arch and isinstance(found.get(f"{arch}.context_length"), int):
                    return int(found[f"{arch}.context_length"])
    except (OSError, ValueError, struct.error, OverflowError) as e:
        log.debug("cannot read the GGUF metadata of %s: %s", path, e)
    return None


__all__ = ["gguf_context_length"]
