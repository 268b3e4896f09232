"""`promptc optimize` and `promptc inspect` as a user runs them (the CLI entry point with
scripted rules files, no network), and a real SIGKILL of a training subprocess in the
middle of a step followed by `--resume`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.optim.scripted_task import SOURCE, Script, data

ROOT = Path(__file__).resolve().parents[2]

RULES = {
    "task.json": {"rules": [{"system": "places are LOC", "match": "Where", "reply": "LOC"},
                            {"match": "Where", "reply": "HUM"}], "default": "HUM"},
    "critic.json": {"rules": [], "default": json.dumps(
        {"instruction": "State the rule: places are LOC.", "answer_format": "State the rule: places are LOC."})},
    "writer.json": {"rules": [{"any": "Prompt to improve: `instruction`",
                               "reply": "<proposal>Classify the question as HUM or LOC. Rule: places are LOC.</proposal>"}],
                    "default": "<proposal>Reply with the label only. Rule: places are LOC.</proposal>"},
}


def setup(tmp_path: Path) -> Path:
    src = (SOURCE.replace("scripted/t_task", "scripted/task.json")
           .replace("scripted/t_backward", "scripted/critic.json")
           .replace("scripted/t_optimizer", "scripted/writer.json"))
    (tmp_path / "trec.pflow").write_text(src)
    for name, rules in RULES.items():
        (tmp_path / name).write_text(json.dumps(rules))
    train, val = data()
    for name, rows in (("train.jsonl", train), ("val.jsonl", val), ("test.jsonl", val)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(tmp_path, *args):
    """`promptc ARGS` in-process (litellm is imported once per test session), in tmp_path."""
    from promptc.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse usage errors
                code = e.code
    finally:
        os.chdir(cwd)
    return Ran(code, out.getvalue(), err.getvalue())


OPT = ["optimize", "trec.pflow", "--train", "train.jsonl", "--val", "val.jsonl", "--steps", "2", "--batch-size", "4"]


def test_optimize_then_inspect(tmp_path):
    setup(tmp_path)
    r = run(tmp_path, *OPT, "--test", "test.jsonl", "--run-dir", "run", "--out", "out.pfc")
    assert r.returncode == 0, r.stderr
    assert "validation 0.500 -> 1.000" in r.stdout and "test 0.500 -> 1.000" in r.stdout
    assert "changed params: instruction" in r.stdout
    for f in ("out.pfc", "run/history.jsonl", "run/report.html", "run/checkpoint.msgpack"):
        assert (tmp_path / f).exists(), f
    html = (tmp_path / "run/report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "places are LOC" in html
    r = run(tmp_path, "inspect", "out.pfc")
    assert r.returncode == 0, r.stderr
    assert "instruction" in r.stdout and "(changed)" in r.stdout and "+Classify the question as HUM or LOC. Rule" in r.stdout
    assert "history" in r.stdout
    # resuming the finished run asks no model anything and writes the same artifact
    before = (tmp_path / "out.pfc").read_bytes()
    r = run(tmp_path, *OPT, "--test", "test.jsonl", "--run-dir", "run", "--out", "out.pfc", "--resume")
    assert r.returncode == 0, r.stderr
    assert "(0 new calls in this run)" in r.stdout
    assert (tmp_path / "out.pfc").read_bytes() == before


def test_budget_exit_zero_with_reason(tmp_path):
    setup(tmp_path)
    r = run(tmp_path, *OPT, "--max-calls", "5", "--run-dir", "run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("budget: max_calls=5 reached")


def test_usage_and_errors(tmp_path):
    setup(tmp_path)
    assert run(tmp_path, "optimize", "trec.pflow").returncode == 2
    assert run(tmp_path, *OPT[:2], "--train", "nope.jsonl", "--val", "val.jsonl").returncode == 1
    (tmp_path / "bad.pflow").write_text("workflow (")
    r = run(tmp_path, "optimize", "bad.pflow", "--train", "train.jsonl", "--val", "val.jsonl")
    assert r.returncode == 1 and "error" in r.stderr and "Traceback" not in r.stderr
    assert run(tmp_path, "inspect", "missing.pfc").returncode == 1


DRIVER = """
import sys, time
from promptc.runtime import scripted
sys.path.insert(0, {root!r})
from tests.optim.scripted_task import Script
s = Script()
scripted.register("t_task", s.task, latency=0.02)
scripted.register("t_backward", s.backward, latency=0.02)
scripted.register("t_optimizer", s.optimizer, latency=0.02)
from promptc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _rows(cache: Path) -> int:
    total = 0
    for db in cache.rglob("*"):
        if db.is_file() and db.suffix in (".db", ".sqlite", ".sqlite3"):
            con = sqlite3.connect(db)
            try:
                total += con.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            finally:
                con.close()
    return total


def test_sigkill_then_resume(tmp_path):
    (tmp_path / "trec.pflow").write_text(SOURCE)
    train, val = data()
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    (tmp_path / "driver.py").write_text(DRIVER.format(root=str(ROOT)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["trec.pflow", "--train", "train.jsonl", "--val", "val.jsonl", "--steps", "3", "--batch-size", "4",
            "--concurrency", "1"]

    def go(run_dir, cache, *extra, **kw):
        cmd = [sys.executable, "driver.py", "optimize", *args, "--run-dir", run_dir, "--cache-dir", cache,
               "--out", f"{run_dir}/out.pfc", *extra]
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # the uninterrupted reference run, in-process with the same scripted models
    Script().register()
    r = run(tmp_path, "optimize", *args, "--run-dir", "ref", "--cache-dir", "cache_ref", "--out", "ref/out.pfc")
    assert r.returncode == 0, r.stderr
    unique_calls = _rows(tmp_path / "cache_ref")
    assert unique_calls > 0

    victim = go("run", "cache_run")
    ckpt = tmp_path / "run" / "checkpoint.msgpack"
    deadline = time.time() + 60
    from promptc.optim import checkpoint

    while time.time() < deadline:
        if ckpt.exists():
            try:
                if checkpoint.load(tmp_path / "run", len(train), len(val)).step >= 1:
                    break
            except Exception:
                pass
        time.sleep(0.01)
    time.sleep(0.1)  # into the middle of step 2
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    if victim.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    done_before = _rows(tmp_path / "cache_run")
    resumed = go("run", "cache_run", "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    new_calls = int(out.split(" new calls in this run)")[0].rsplit("(", 1)[1])
    # no call asked before the kill was asked again, and the result is the reference one
    assert new_calls == unique_calls - done_before
    assert (tmp_path / "run" / "out.pfc").read_bytes() == (tmp_path / "ref" / "out.pfc").read_bytes()
