"""`promptc optimize --resume` on a damaged, foreign or out-of-range checkpoint, and on a run
folder another run holds: one line naming the file (or folder) and the problem."""

from __future__ import annotations

import subprocess
import sys

import msgpack
import pytest

from promptc.optim import checkpoint
from tests.optim.test_cli import OPT, ROOT, run, setup


def resume_error(tmp_path, content: bytes | None = None, *, prefix: str = f"run/{checkpoint.FILE}: ") -> str:
    if content is not None:
        setup(tmp_path)
        (tmp_path / "run").mkdir(exist_ok=True)
        (tmp_path / "run" / checkpoint.FILE).write_bytes(content)
    r = run(tmp_path, *OPT, "--run-dir", "run", "--resume")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    head, sep, last = r.stderr.rpartition("promptc optimize: error: ")  # after the live progress table
    assert sep and last.count("\n") == 1 and last.startswith(prefix), r.stderr
    assert head.endswith("\n")  # on a line of its own, not after the table's last frame
    return last


def envelope(state) -> bytes:
    return msgpack.packb({"magic": checkpoint.MAGIC, "format": checkpoint.FORMAT, "state": state})


def test_corrupt_checkpoint_names_the_file(tmp_path):
    err = resume_error(tmp_path, envelope({}) + b"\x00garbage")
    assert "corrupt checkpoint" in err


def test_truncated_checkpoint_names_the_file(tmp_path):
    err = resume_error(tmp_path, envelope({"history": ["x" * 50]})[:-10])
    assert "corrupt checkpoint" in err


def test_a_checkpoint_of_an_older_promptc_is_refused(tmp_path):
    old = msgpack.packb({"version": 1, "step": 1, "params": {}, "history": [], "rng": [], "accounting": {}})
    err = resume_error(tmp_path, old)
    assert "started by an older promptc (checkpoint version 1)" in err and "--run-dir" in err


def test_not_a_checkpoint(tmp_path):
    assert "not a promptc checkpoint" in resume_error(tmp_path, msgpack.packb([1, 2, 3]))
    err = resume_error(tmp_path, msgpack.packb({"magic": checkpoint.MAGIC, "format": 99, "state": {}}))
    assert "checkpoint format 99" in err


def test_checkpoint_missing_fields_names_them(tmp_path):
    err = resume_error(tmp_path, envelope({}))
    assert "malformed checkpoint" in err and "needs field 'program'" in err and "KeyError" not in err


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """The state of a real run stopped after its first round, as plain data."""
    tmp = tmp_path_factory.mktemp("saved")
    setup(tmp)
    r = run(tmp, *OPT[:-4], "--steps", "1", "--batch-size", "4", "--run-dir", "run")
    assert r.returncode == 0, r.stderr
    data = msgpack.unpackb((tmp / "run" / checkpoint.FILE).read_bytes(), strict_map_key=False)
    assert data["state"]["history"][0]["step"] == 1
    return data["state"]


def mutated(saved: dict, change) -> bytes:
    state = msgpack.unpackb(msgpack.packb(saved), strict_map_key=False)  # a deep copy
    change(state)
    return envelope(state)


def test_an_intact_checkpoint_resumes(tmp_path, saved):
    setup(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / checkpoint.FILE).write_bytes(envelope(saved))
    r = run(tmp_path, *OPT, "--run-dir", "run", "--resume")
    assert r.returncode == 0, r.stderr


def _set(path, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize("path,value,says", [
    (("history", 0, "step"), "one", "Round.step is str, expected int"),
    (("history", 0, "attempts"), 7, "Round.attempts is int"),
    (("calls_per_row",), "x", "TrainState.calls_per_row is str"),
    (("rng", "internal"), 3, "RngState.internal is int"),
])
def test_malformed_checkpoint_fields(tmp_path, saved, path, value, says):
    err = resume_error(tmp_path, mutated(saved, _set(path, value)))
    assert "malformed checkpoint" in err and says in err


@pytest.mark.parametrize("path,value,says", [
    (("history", 0, "step"), 2**62, "round 1: numbered 4611686018427387904"),
    (("history", 0, "batch", 0), 10**6, "round 1: a minibatch index outside the 8 training rows"),
    (("history", 0, "minibatch_scores", 0), float("inf"), "round 1: minibatch scores"),
    (("history", 0, "failing"), 99, "round 1: minibatch scores"),
    (("best", "scores"), [1.0], "the best scores do not fit the 4 validation rows"),
    (("start", "rows"), 40, "the start scores do not fit"),
    (("calls_per_row",), 1e300, "calls per row"),
    (("rng", "internal", 0), 2**40, "bad random state"),
    (("accounting", 0, "counts", "calls"), -5, "negative or non-finite accounting"),
    (("history", 0, "attempts", 0, "val_rows"), 10**9, "a validation score out of range"),
    (("program", "params", 0, "nearest"), 3, "param 'instruction' shows 3 nearest of 0 demos"),
    (("history", 0, "gradients", "instruction", 0, "row"), 7_000, "round 1: feedback from a row outside its minibatch"),
])
def test_values_out_of_range_are_refused(tmp_path, saved, path, value, says):
    err = resume_error(tmp_path, mutated(saved, _set(path, value)))
    assert "malformed checkpoint" in err and says in err, err


def test_a_checkpoint_of_the_gradient_counts_format_is_refused(tmp_path, saved):
    old = msgpack.packb({"magic": checkpoint.MAGIC, "format": 2, "state": saved})
    err = resume_error(tmp_path, old)
    assert f"checkpoint format 2, this promptc reads format {checkpoint.FORMAT}" in err and "--run-dir" in err


def test_a_pool_entry_from_a_row_the_run_does_not_have(tmp_path, saved):
    from promptc.optim.state import CODEC

    def change(state):
        entry = {"demo": {"inputs": [["question", "Where is Oslo?"]], "output": "LOC"}, "origin": "trace", "row": 57}
        state["pools"] = {"instruction": {"entries": [entry]}}

    err = resume_error(tmp_path, mutated(saved, change))
    assert "the demo pool of 'instruction' has an entry from 'trace' row 57" in err
    assert "Pool" in CODEC.records  # what the pool decodes to


def test_a_run_folder_is_held_by_one_run(tmp_path):
    setup(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom promptc.optim import checkpoint\n"
         "with checkpoint.hold('run'):\n    print('held', flush=True)\n    sys.stdin.read()\n"],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        err = resume_error(tmp_path, prefix="run: ")
        assert f"in use by another promptc run (process {holder.pid})" in err
    finally:
        holder.communicate("", timeout=30)
    # released when the holder ends: the run goes ahead
    r = run(tmp_path, *OPT, "--run-dir", "run")
    assert r.returncode == 0, r.stderr
