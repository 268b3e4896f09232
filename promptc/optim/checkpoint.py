"""The trainer's run folder state, written after every step (msgpack, atomic replace).

A checkpoint holds everything `Trainer.fit(resume=True)` needs to continue as if it had
never stopped: the best params so far (prompt texts and demos), the step counter, the
validation scores, the history, every rejected proposal, the optimizer's memory, the
demo pool, the minibatch sampler's random state and the accounting. Data only (no
pickle); the write goes to a temporary file first and replaces the old checkpoint with
`os.replace`, so a kill -9 leaves either the previous or the new one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import msgpack

from promptc.params_view import apply_params, params_to_data  # what a checkpoint's "params" holds

__all__ = ["FILE", "VERSION", "CheckpointError", "apply_params", "params_to_data", "load", "save",
           "rng_from_data", "rng_to_data"]

FILE = "checkpoint.msgpack"
VERSION = 1


def rng_to_data(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_data(data: list) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng


def save(run_dir: str | Path, state: dict) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(msgpack.packb({"version": VERSION, **state}, use_bin_type=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the problem."""


# What every checkpoint holds (`Trainer` reads these back on resume), and their types.
_FIELDS: dict[str, tuple[type, ...]] = {
    "step": (int,), "params": (dict,), "history": (list,), "rng": (list,), "accounting": (dict,),
}
# What the current trainer adds (an older checkpoint without them makes it start over):
# checked for type when present.
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "prompt_steps": (int,), "demos_due": (bool,), "start_scores": (list, type(None)), "best_scores": (list, type(None)),
    "calls_per_row": (int, float), "prompt_optimizers": (dict,), "demo_optimizers": (dict,),
}


def load(run_dir: str | Path) -> dict | None:
    """The checkpoint of a run folder, or None when there is none.

    A file that is not a checkpoint, is truncated or corrupt, or lacks what a resume
    needs raises `CheckpointError` naming the file and what is wrong.
    """
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    try:
        data = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror or e}") from None
    except Exception as e:  # msgpack raises several kinds for truncated / garbled data
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(e).__name__}: {e}); delete it or drop --resume") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise CheckpointError(f"{path}: not a promptc checkpoint (version {data.get('version') if isinstance(data, dict) else '?'})")
    missing = [k for k in _FIELDS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint: no {', '.join(repr(k) for k in missing)}")
    for key, types in (*_FIELDS.items(), *((k, t) for k, t in _OPTIONAL.items() if k in data)):
        if not isinstance(data[key], types) or (types == (int,) and isinstance(data[key], bool)):
            raise CheckpointError(f"{path}: malformed checkpoint: {key!r} is a {type(data[key]).__name__}")
    for name, value in data["params"].items():
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: malformed checkpoint: param {name!r} is a {type(value).__name__}")
    try:
        rng_from_data(data["rng"])
    except Exception as e:
        raise CheckpointError(f"{path}: malformed checkpoint: bad random state ({type(e).__name__})") from None
    return data
