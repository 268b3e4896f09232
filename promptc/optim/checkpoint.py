"""A run folder's checkpoint and lock.

The checkpoint is the run's `TrainState` (promptc.optim.state), written after every round
so that `--resume` continues as if the run had never stopped. It is encoded by the codec
the `.pfc` uses (promptc.codec, from the records' annotations: no pickle, nothing but the
state's own record classes is built on load) inside a small envelope:

    {"magic": "promptc-checkpoint", "format": FORMAT, "state": <the state's data>}

The write goes to a temporary file of its own first and replaces the old checkpoint with
`os.replace`, so a kill -9 leaves either the previous or the new one.

`load` refuses, with one line naming the file (`CheckpointError`): a file that is not a
checkpoint, truncated or corrupt data, a checkpoint started by an older promptc (format 1
was a hand-built map: such a run cannot be resumed), a value of the wrong type (the codec
names where), and a value out of the range the run could have produced (`problem`: round
numbers that do not count 1, 2, 3, ..., row indices outside the training set, scores
that are not finite numbers (a metric's scores are not bounded), score lists of the wrong length, negative counts, a bad random state, a
param showing more nearest demos than it holds).

`hold(run_dir)` locks the run folder for one run (an exclusive `flock` on `run.lock`,
released when the run ends or its process dies); a second run on the same folder is
refused with the process id that holds it.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import msgpack

from promptc.codec import CodecError
from promptc.optim.demos import ORIGINS
from promptc.optim.history import DECISIONS, Attempt, Round
from promptc.optim.state import CODEC, TrainState

__all__ = ["FILE", "FORMAT", "LOCK", "MAGIC", "CheckpointError", "RunFolderBusy", "hold", "load", "problem", "save"]

log = logging.getLogger(__name__)

FILE = "checkpoint.msgpack"
LOCK = "run.lock"
MAGIC = "promptc-checkpoint"
# 1: a hand-built map with a "version" key (up to 261eb7b); 2: the codec's TrainState with
# gradient counts; 3: with the gradient texts and every optimizer reply (history.Feedback, Reply)
FORMAT = 3


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the problem."""


class RunFolderBusy(ValueError):
    """Another run holds the run folder."""


def save(run_dir: str | Path, state: TrainState) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FILE
    data = msgpack.packb({"magic": MAGIC, "format": FORMAT, "state": CODEC.encode(state)}, use_bin_type=True)
    fd, tmp = tempfile.mkstemp(prefix=FILE + ".", suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(run_dir: str | Path, train_rows: int, val_rows: int) -> TrainState | None:
    """The checkpoint of a run folder, or None when there is none. `train_rows` and
    `val_rows` are the sizes of the run's data sets (what the indices and scores of a state
    must fit). Anything that cannot be resumed from raises `CheckpointError`."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    try:
        data = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror or e}") from None
    except Exception as e:  # msgpack raises several kinds for truncated / garbled data
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(e).__name__}); delete it or drop --resume") from None
    if isinstance(data, dict) and "magic" not in data and "version" in data:
        raise CheckpointError(
            f"{path}: started by an older promptc (checkpoint version {_clip(data['version'])}); "
            "it cannot be resumed: delete it or use another --run-dir"
        )
    if not isinstance(data, dict) or data.get("magic") != MAGIC:
        raise CheckpointError(f"{path}: not a promptc checkpoint")
    if data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {_clip(data.get('format'))}, this promptc reads format {FORMAT}; "
            "delete it or use another --run-dir"
        )
    try:
        state = CODEC.decode(data.get("state"))
    except CodecError as e:
        raise CheckpointError(f"{path}: malformed checkpoint ({_clip(str(e), 160)})") from None
    except Exception as e:  # e.g. data nested too deep
        raise CheckpointError(f"{path}: malformed checkpoint ({type(e).__name__})") from None
    wrong = problem(state, train_rows, val_rows)
    if wrong:
        raise CheckpointError(f"{path}: malformed checkpoint ({_clip(wrong, 160)})")
    return state


# -- what a run could have produced ----------------------------------------------------------


def problem(state: TrainState, train_rows: int, val_rows: int) -> str | None:
    """What in `state` no run on `train_rows` training and `val_rows` validation rows could
    have produced, or None."""
    rng = state.rng
    if rng.version != 3 or len(rng.internal) != 625 or not all(0 <= x < 2**32 for x in rng.internal) \
            or rng.internal[-1] > 624 or (rng.gauss is not None and not math.isfinite(rng.gauss)):
        return "bad random state"
    for name, ev in (("start", state.start), ("best", state.best)):
        if ev is not None and (ev.rows != val_rows or not ev.complete or not _scores(ev.scores)):
            return f"the {name} scores do not fit the {val_rows} validation rows"
    if state.history and state.best is None:
        return "rounds without a best score"
    for p in state.program.params:
        if not 0 <= p.nearest <= len(p.demos):
            return f"param {_clip(p.name)!r} shows {p.nearest} nearest of {len(p.demos)} demos"
    if not (1.0 <= state.calls_per_row < 1e9):
        return f"calls per row {state.calls_per_row!r} is out of range"
    for i, r in enumerate(state.history):
        wrong = _round(r, i + 1, train_rows, val_rows)
        if wrong:
            return f"round {i + 1}: {wrong}"
    for name, opt in state.optimizers.items():
        if opt.param != name:
            return f"the optimizer of {name!r} is for {opt.param!r}"
        if not _scores([s for _, s in getattr(opt, "memory", ())]):
            return f"the memory of {name!r} has a score that is not a finite number"
    for name, pool in state.pools.items():
        for e in pool.entries:
            if e.origin not in ORIGINS or (e.row is not None and not 0 <= e.row < train_rows):
                return f"the demo pool of {name!r} has an entry from {e.origin!r} row {e.row}"
    for row in state.accounting:
        c = row.counts
        counts = [getattr(c, f) for f in ("calls", "cache_hits", "errors", "retries", "prompt_tokens", "completion_tokens")]
        if any(n < 0 for n in counts) or not (math.isfinite(c.cost) and c.cost >= 0):
            return f"negative or non-finite accounting for {row.phase}/{row.model}"
    return None


def _round(r: Round, step: int, train_rows: int, val_rows: int) -> str | None:
    if r.step != step:
        return f"numbered {r.step}"
    if r.kind not in ("demos", "prompts"):
        return f"unknown kind {r.kind!r}"
    if not all(0 <= i < train_rows for i in r.batch) or len(r.batch) > train_rows:
        return f"a minibatch index outside the {train_rows} training rows"
    if len(r.minibatch_scores) != len(r.batch) or not _scores(r.minibatch_scores) or not 0 <= r.failing <= len(r.batch):
        return "minibatch scores that do not fit its minibatch"
    if not _scores([r.best]) or not (math.isfinite(r.seconds) and r.seconds >= 0) or r.backward_calls < 0:
        return "a score, a time or a count out of range"
    for fs in r.gradients.values():
        if any(f.row not in r.batch for f in fs):
            return "feedback from a row outside its minibatch"
    for s in r.accounting.values():
        if min(s.requests, s.errors, s.prompt_tokens, s.completion_tokens) < 0 or not (math.isfinite(s.cost) and s.cost >= 0):
            return "negative or non-finite accounting"
    for a in r.attempts:
        wrong = _attempt(a, train_rows, val_rows)
        if wrong:
            return f"proposal for {a.param!r}: {wrong}"
    return None


def _attempt(a: Attempt, train_rows: int, val_rows: int) -> str | None:
    if a.kind not in ("prompt", "demos"):
        return f"unknown kind {a.kind!r}"
    if not 0 <= a.val_rows <= val_rows or (a.val is not None and not _scores([a.val])):
        return "a validation score out of range"
    if not _scores([x for x in (a.failing_before, a.failing_after, a.gain) if x is not None]):
        return "a minibatch score or a gain that is not a finite number"
    race = a.race
    if race is not None:
        if min(race.entrants, race.first_rows, race.evaluations) < 0 or race.first_rows > train_rows \
                or race.evaluations > race.entrants * train_rows:
            return "a race out of range"
        if any(not _scores([mean]) or not 0 <= rows <= train_rows for _, mean, rows in race.standing):
            return "a race standing out of range"
        if race.decided_by not in DECISIONS:
            return f"a race decided by {_clip(race.decided_by)!r}"
    return None


def _scores(scores) -> bool:
    """Every score a finite float (metrics score in [0, 1] by convention; none is refused
    for keeping to it)."""
    return all(isinstance(s, float) and math.isfinite(s) for s in scores)


def _clip(value: object, n: int = 40) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[: n - 3] + "..."


# -- the lock ------------------------------------------------------------------------------------


@contextmanager
def hold(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run folder (created if needed) for the duration of the block."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = True
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderBusy(
            f"{run_dir}: in use by another promptc run (process {_clip(holder, 20)}); "
            "wait for it to end or use another --run-dir"
        ) from None
    except OSError as e:  # a file system without locks: run unlocked, and say so
        log.warning("%s: cannot lock the run folder (%s); another run could use it at the same time", run_dir, e)
        locked = False
    try:
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir
    finally:
        if locked:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
