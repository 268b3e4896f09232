"""`promptc optimize --resume` on a damaged checkpoint: one line naming the file and the problem."""

from __future__ import annotations

import random

import msgpack
import pytest

from promptc.optim import checkpoint
from tests.optim.test_cli import OPT, run, setup


def resume_error(tmp_path, content: bytes) -> str:
    setup(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / checkpoint.FILE).write_bytes(content)
    r = run(tmp_path, *OPT, "--run-dir", "run", "--resume")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    head, sep, last = r.stderr.rpartition("promptc optimize: error: ")  # after the live progress table
    assert sep and last.count("\n") == 1 and last.startswith(f"run/{checkpoint.FILE}: ")
    assert head.endswith("\n")  # on a line of its own, not after the table's last frame
    return last


def test_corrupt_checkpoint_names_the_file(tmp_path):
    good = msgpack.packb({"version": checkpoint.VERSION, "step": 1})
    err = resume_error(tmp_path, good + b"\x00garbage")
    assert "corrupt checkpoint" in err


def test_truncated_checkpoint_names_the_file(tmp_path):
    err = resume_error(tmp_path, msgpack.packb({"version": checkpoint.VERSION, "step": 1, "history": ["x" * 50]})[:-10])
    assert "corrupt checkpoint" in err


def test_checkpoint_missing_keys_names_them(tmp_path):
    err = resume_error(tmp_path, msgpack.packb({"version": checkpoint.VERSION, "params": {}}))
    assert "incomplete checkpoint: no 'step'" in err and "KeyError" not in err


@pytest.mark.parametrize("field,value", [("step", "one"), ("params", [1]), ("rng", [1, 2, 3]), ("prompt_steps", "x")])
def test_malformed_checkpoint_fields(tmp_path, field, value):
    state = {"step": 1, "params": {}, "history": [], "accounting": {}, "prompt_steps": 0}
    state["rng"] = checkpoint.rng_to_data(random.Random(0))
    state[field] = value
    err = resume_error(tmp_path, msgpack.packb({"version": checkpoint.VERSION, **state}))
    assert "malformed checkpoint" in err
