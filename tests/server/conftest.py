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


@pytest.fixture(scope="session")
def llama_server():
    """The server's OpenAI base URL, e.g. "http://127.0.0.1:41234/v1"."""
    from promptc.runtime import local

    reason = local.available("default")
    if reason is not None:
        pytest.skip(f"no embedded model: {reason}")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/v1"
    log = tempfile.TemporaryFile()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "server" / "serve.py"), str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _up(base + "/models"):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                what = f"exited with {proc.returncode}" if proc.poll() is not None else f"not up in {START_TIMEOUT:g}s"
                pytest.fail(f"llama_cpp.server {what}:\n" + log.read().decode(errors="replace")[-4000:], pytrace=False)
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
