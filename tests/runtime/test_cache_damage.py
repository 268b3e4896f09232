"""A cache that cannot be written is read, a corrupt one is set aside, a folder that cannot
exist is one line: never an internal error or a traceback."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest

from promptc.cli import main
from promptc.runtime import scripted
from promptc.runtime.cache import FILENAME, Cache, CachedAnswer, CacheError

ANSWER = CachedAnswer("stored", 1, 2, 0.0)


def filled(folder: Path, n: int = 1) -> Path:
    cache = Cache(folder)
    for i in range(n):
        cache.put(f"k{i}", "m", CachedAnswer(f"stored {i}" + " padding" * 40, 1, 2))
    cache.close()
    return folder / FILENAME


def garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database at all\n" * 200)


def truncated(db: Path) -> None:
    filled(db.parent, 400)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def zero_header(db: Path) -> None:
    filled(db.parent, 20)
    data = bytearray(db.read_bytes())
    data[:100] = bytes(100)
    db.write_bytes(bytes(data))


def a_folder(db: Path) -> None:
    db.mkdir(parents=True)
    (db / "inside").write_text("x")


DAMAGE = {"garbage": garbage, "truncated": truncated, "zero-header": zero_header, "a-folder": a_folder}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_corrupt_cache_is_set_aside_and_a_fresh_one_started(tmp_path, caplog, damage):
    folder = tmp_path / "c"
    folder.mkdir()
    damage(folder / FILENAME)
    with caplog.at_level(logging.WARNING, logger="promptc.runtime.cache"):
        cache = Cache(folder)
    assert cache.mode == "rw"
    assert [r.message for r in caplog.records if "moved to" in r.message and str(folder) in r.message]
    assert len(list(folder.glob(f"{FILENAME}.corrupt-*"))) == 1
    cache.put("k", "m", ANSWER)
    assert cache.get("k") == ANSWER and len(cache) == 1


@contextlib.contextmanager
def immutable(*paths: Path):
    """Read-only even for root (chattr +i); skips where the filesystem has no such flag."""
    done = []
    try:
        for p in paths:
            if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i is not available here")
            done.append(p)
        yield
    finally:
        for p in done:
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


def test_a_read_only_cache_is_read_and_nothing_is_stored(tmp_path, caplog):
    folder = tmp_path / "c"
    db = filled(folder)
    with immutable(db, folder), caplog.at_level(logging.WARNING, logger="promptc.runtime.cache"):
        cache = Cache(folder)
        assert cache.mode == "ro"
        assert cache.get("k0").text.startswith("stored 0")
        cache.put("new", "m", ANSWER)  # nothing, no error
        assert cache.get("new") is None
        cache.close()
    warnings = [r.message for r in caplog.records]
    assert len(warnings) == 1 and str(folder) in warnings[0] and "cannot be written" in warnings[0]


def test_a_read_only_folder_without_a_cache_runs_without_one(tmp_path, caplog):
    folder = tmp_path / "c"
    folder.mkdir()
    with immutable(folder), caplog.at_level(logging.WARNING, logger="promptc.runtime.cache"):
        cache = Cache(folder)
        assert cache.mode == "off" and cache.get("k") is None
        cache.put("k", "m", ANSWER)
        assert len(cache) == 0
    assert len(caplog.records) == 1 and "running without a cache" in caplog.records[0].message


def test_a_cache_locked_past_its_timeout_is_read_from_then_on(tmp_path, caplog):
    folder = tmp_path / "c"
    filled(folder)
    cache = Cache(folder, timeout=0.2)
    holder = sqlite3.connect(folder / FILENAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    holder.execute("INSERT INTO calls VALUES ('x', 'm', 't', 0, 0, 0, 0)")
    with caplog.at_level(logging.WARNING, logger="promptc.runtime.cache"):
        cache.put("k", "m", ANSWER)
        cache.put("k2", "m", ANSWER)
    holder.execute("ROLLBACK")
    assert cache.mode == "ro" and cache.get("k0") is not None and cache.get("k") is None
    assert len(caplog.records) == 1 and "locked" in caplog.records[0].message


@pytest.mark.parametrize("where", ["under-a-file", "under-proc"])
def test_a_cache_folder_that_cannot_exist_is_one_error(tmp_path, where):
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" / "cache" if where == "under-a-file" else Path("/proc/promptc-cache")
    with pytest.raises(CacheError, match=r"cache folder .*: cannot be created \(") as e:
        Cache(folder)
    assert str(folder) in str(e.value)


FLOW = """\
model m = "scripted/damage-echo"
llm ask(q: text) -> text via m { user "{q}" }
workflow w(q: text) -> text { return ask(q) }
"""


def cli_setup(tmp_path: Path) -> tuple[Path, Path]:
    scripted.register("damage-echo", lambda messages: "ok")
    src = tmp_path / "w.pflow"
    src.write_text(FLOW)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{i}", "answer": "ok"}) + "\n" for i in range(3)))
    return src, data


@pytest.mark.parametrize("command", ["eval", "run"])
def test_cli_cache_under_a_file_is_one_line(tmp_path, capsys, command):
    src, data = cli_setup(tmp_path)
    (tmp_path / "file").write_text("x")
    code = main([command, str(src), "--data", str(data), "--cache-dir", str(tmp_path / "file" / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"promptc {command}: error: cache folder ") and "cannot be created" in err[0]


def test_cli_corrupt_cache_is_one_warning_and_the_eval_runs(tmp_path, capsys):
    src, data = cli_setup(tmp_path)
    folder = tmp_path / "c"
    folder.mkdir()
    garbage(folder / FILENAME)
    code = main(["eval", str(src), "--data", str(data), "--cache-dir", str(folder)])
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith("exact_match 1.000")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("promptc eval: warning: cache ") and "moved to" in lines[0]


def test_optimize_with_a_cache_folder_that_cannot_exist_is_one_line(tmp_path, capsys):
    src, data = cli_setup(tmp_path)
    src.write_text(FLOW.replace('user "{q}"', 'user "{hint} {q}"') + 'param hint: prompt trainable "a hint" = "Answer."\n')
    (tmp_path / "file").write_text("x")
    code = main([
        "optimize", str(src), "--train", str(data), "--val", str(data), "--steps", "1",
        "--run-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "file" / "c"),
    ])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("promptc optimize: error:") and "cache folder" in err[-1]


FILL = """
import logging, sys
logging.basicConfig(format="%(message)s")
from promptc.runtime.cache import Cache, CachedAnswer
cache = Cache(sys.argv[1])
for i in range(400):
    cache.put(f"k{i}", "m", CachedAnswer("x" * 4000))
print(cache.mode, cache.get("k0") is not None, len(cache))
"""


def test_a_full_disk_turns_the_cache_to_reading(tmp_path):
    """On a 256 KB tmpfs (a private mount namespace; skipped where one cannot be made)."""
    import sys

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(FILL)
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no private mount namespace here")
    shell = f"mount -t tmpfs -o size=256k tmpfs {mnt} && {sys.executable} {script} {mnt / 'c'}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    if "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"tmpfs cannot be mounted here: {done.stderr.strip()}")
    mode, readable, entries = done.stdout.split()
    assert (mode, readable) == ("ro", "True") and 0 < int(entries) < 400
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 1 and "database or disk is full" in warnings[0] and str(mnt / "c") in warnings[0]
