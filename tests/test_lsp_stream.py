"""`promptc lsp` fed a hostile byte stream: absurd and malformed headers are logged and
skipped, and the server keeps answering; the end of the stream is a clean exit.

These talk to the server process with raw bytes (a real client would never send them)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="pygls is in the lsp extra")

SERVER = [sys.executable, "-c", "import sys; from promptc.cli import main; sys.exit(main(sys.argv[1:]))", "lsp"]


def frame(obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawClient:
    """The server as a subprocess; its answers parsed (correctly framed) on a thread."""

    def __init__(self, log: Path):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*SERVER, "--log", str(log)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.answers: queue.Queue = queue.Queue()
        self.others: list[dict] = []  # notifications and answers `wait` passed over
        threading.Thread(target=self._read, daemon=True).start()
        self.send(frame({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"capabilities": {}}}))
        assert self.wait(0)["result"]["capabilities"]["hoverProvider"]
        self.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            line = out.readline()
            if not line:
                return
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
                while out.readline().strip():
                    pass
                self.answers.put(json.loads(out.read(n)))

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait(self, id_: int, timeout: float = 20) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                msg = self.answers.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"the server exited ({self.proc.returncode})"
                continue
            if msg.get("id") == id_:
                return msg
            self.others.append(msg)
        raise AssertionError(f"no answer to request {id_} within {timeout} s")

    def probe(self, id_: int) -> dict:
        """A request any live server answers (hover on a document that is not open: null)."""
        self.send(frame({"jsonrpc": "2.0", "id": id_, "method": "textDocument/hover", "params": {
            "textDocument": {"uri": "file:///nowhere.pflow"}, "position": {"line": 0, "character": 0}}}))
        return self.wait(id_)

    def close(self) -> int:
        self.send(frame({"jsonrpc": "2.0", "id": 999, "method": "shutdown"}))
        self.wait(999)
        self.send(frame({"jsonrpc": "2.0", "method": "exit"}))
        return self.proc.wait(timeout=20)


@pytest.fixture
def server(tmp_path):
    client = RawClient(tmp_path / "lsp.log")
    yield client
    if client.proc.poll() is None:
        client.proc.kill()
        client.proc.wait()


CORRUPT = {
    "huge": b"Content-Length: 9999999999999\r\n\r\n{\"jsonrpc\": \"2.0\", \"id\": 50, \"method\": \"x\"}",
    "overflow": b"Content-Length: 99999999999999999999999\r\n\r\n{}",
    "abc": b"Content-Length: abc\r\n\r\n{\"jsonrpc\": \"2.0\", \"id\": 51, \"method\": \"x\"}",
    "lf-only": b"Content-Length: 2\n\n{}",
    "garbage": b"\x00\xff not a header at all\r\n\r\n",
    "not-json": b"Content-Length: 5\r\n\r\nhello",
    "not-a-message": frame({"neither": "request nor response"}),
}


def test_absurd_and_malformed_headers_are_skipped_and_the_server_answers(server, tmp_path):
    for i, (name, bad) in enumerate(CORRUPT.items(), start=1):
        server.send(bad)
        assert server.probe(i)["result"] is None, name
    # headers written loosely are read (bare \n, double space, lower case)
    body = json.dumps({"jsonrpc": "2.0", "id": 100, "method": "textDocument/hover", "params": {
        "textDocument": {"uri": "file:///x.pflow"}, "position": {"line": 0, "character": 0}}}).encode()
    for i, head in enumerate([b"Content-Length: %d\n\n", b"Content-Length:  %d\r\n\r\n", b"content-length: %d\r\n\r\n"]):
        server.send(head % len(body) + body.replace(b'"id": 100', b'"id": %d' % (100 + i)))
        assert server.wait(100 + i)["result"] is None
    assert server.close() == 0
    log = (tmp_path / "lsp.log").read_text()
    assert "Content-Length 9999999999999 is over the limit" in log
    assert "Content-Length 'abc' is not a byte count" in log
    assert "MemoryError" not in log and "OverflowError" not in log


def test_the_client_hears_about_a_broken_message(server):
    server.send(b"Content-Length: abc\r\n\r\n{}")
    server.probe(1)
    logs = [n["params"]["message"] for n in server.others if n.get("method") == "window/logMessage"]
    assert any("is not a byte count" in m for m in logs), server.others


def test_a_body_that_never_completes_does_not_stall_the_server(server):
    hover = {"jsonrpc": "2.0", "id": 7, "method": "textDocument/hover", "params": {
        "textDocument": {"uri": "file:///x.pflow"}, "position": {"line": 0, "character": 0}}}
    server.send(b"Content-Length: 1000\r\n\r\n" + json.dumps(hover).encode())
    # the body is hundreds of bytes short; once the stream is idle the server reads what came
    assert server.wait(7, timeout=20)["result"] is None
    assert server.probe(8)["result"] is None


@pytest.mark.parametrize("ending", [b"", b"Content-Length: 10\r\n\r\n{\"a\""])
def test_the_end_of_the_stream_is_a_clean_exit(server, tmp_path, ending):
    server.send(ending)
    server.proc.stdin.close()
    assert server.proc.wait(timeout=20) in (0, 1)
    log = (tmp_path / "lsp.log").read_text()
    assert "the client closed the connection" in log and "Traceback" not in log


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_corruption_leaves_the_server_answering(server, seed):
    """Random header corruptions (tests/test_lsp_framing.py's generator), each followed by a
    request that must be answered; bounded: a cut body waits at most the 2 s idle time."""
    import random

    from tests.test_lsp_framing import _corruptions

    rng = random.Random(seed)
    t0 = time.monotonic()
    for i in range(6):
        server.send(_corruptions(rng, json.dumps({"jsonrpc": "2.0", "id": 500 + i, "method": "$/nothing"}).encode()))
        assert server.probe(10 + i)["result"] is None
    assert server.close() == 0
    assert time.monotonic() - t0 < 60
