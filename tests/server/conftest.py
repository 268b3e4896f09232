"""The `llama_server` fixture: a real `llama_cpp.server` on 127.0.0.1 serving the embedded
GGUF, started once per test session (loading takes a few seconds) and stopped after.

It is skipped, with the reason, only when llama_cpp or the weights are absent; if they are
there and the server does not come up (missing `[server]` extra, a crash, no answer in
time), the tests that use it fail with the server's own output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # seconds for the model to load and the port to answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _start(log) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "server" / "serve.py"), str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
    )
    return proc, f"http://127.0.0.1:{port}/v1"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def llama_server():
    """The server's OpenAI base URL, e.g. "http://127.0.0.1:41234/v1"."""
    from promptc.runtime import local

    reason = local.available("default")
    if reason is not None:
        pytest.skip(f"no embedded model: {reason}")
    log = tempfile.TemporaryFile()
    proc = None
    try:
        for attempt in range(3):  # the free port can be taken before the server binds it
            proc, base = _start(log)
            deadline = time.monotonic() + START_TIMEOUT
            while not _up(base + "/models") and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if _up(base + "/models"):
                break
            exited = proc.poll()
            _stop(proc)
            log.seek(0)
            output = log.read().decode(errors="replace")
            if "address already in use" not in output.lower() or attempt == 2:
                what = f"exited with {exited}" if exited is not None else f"not up in {START_TIMEOUT:g}s"
                pytest.fail(f"llama_cpp.server {what}:\n" + output[-4000:], pytrace=False)
            log.seek(0)
            log.truncate()
        yield base
    finally:
        if proc is not None and proc.poll() is None:
            _stop(proc)
        log.close()
