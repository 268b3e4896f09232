"""How fast `promptc lsp` answers hover and definition while a slow document compiles.

For each size N, a workflow of N `let`s is opened (seconds to compile at the larger
sizes) and, while it compiles, hover and definition requests go to a small document open
beside it, one after the other; then the same requests go to the big document itself (its
index is as large as it gets). The table gives the round trips (median and worst) and
how long the big document took to get its diagnostics. The target: every answer within
0.5 s, whatever the document.

Run: `python bench/lsp_latency.py` (`--quick` for the small size only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

SMALL = 'llm f(q: text) -> text via m { user "{q}" }\nmodel m = "scripted/echo"\nworkflow w(q: text) -> text {\n  let a = f(q)\n  return a\n}\n'


def big(n: int) -> str:
    body = "\n".join(f'  let v{i} = q + "{i}"' for i in range(n))
    return f"workflow w(q: text) -> text {{\n{body}\n  return v{n - 1}\n}}\n"


class Client:
    def __init__(self) -> None:
        cmd = [sys.executable, "-c", "import sys; from promptc.cli import main; sys.exit(main(['lsp']))"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Condition()
        self.answers: dict[int, float] = {}
        self.diagnosed: dict[str, float] = {}
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.request("initialize", {"capabilities": {}})
        self.notify("initialized", {})

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            line = out.readline()
            if not line:
                return
            if not line.lower().startswith(b"content-length:"):
                continue
            n = int(line.split(b":")[1])
            while out.readline().strip():
                pass
            msg = json.loads(out.read(n))
            with self.lock:
                if "id" in msg and "method" not in msg:
                    self.answers[msg["id"]] = time.perf_counter()
                elif msg.get("method") == "textDocument/publishDiagnostics":
                    self.diagnosed[msg["params"]["uri"]] = time.perf_counter()
                self.lock.notify_all()

    def _send(self, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict) -> float:
        """Send a request, wait for its answer; the round trip in seconds."""
        self.next_id += 1
        i = self.next_id
        t0 = time.perf_counter()
        self._send({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        with self.lock:
            self.lock.wait_for(lambda: i in self.answers, timeout=60)
            return self.answers[i] - t0

    def open(self, uri: str, text: str) -> float:
        t0 = time.perf_counter()
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "pflow", "version": 1, "text": text}})
        return t0

    def wait_diagnostics(self, uri: str) -> float:
        with self.lock:
            self.lock.wait_for(lambda: uri in self.diagnosed, timeout=600)
            return self.diagnosed[uri]

    def close(self) -> None:
        self.request("shutdown", {})
        self.notify("exit", {})
        self.proc.wait(timeout=30)


def probe(c: Client, uri: str, rounds: int, until: str | None = None) -> list[tuple[float, float]]:
    """Hover then definition on `uri`, `rounds` times (or until `until` is diagnosed)."""
    pos_hover, pos_def = {"line": 3, "character": 10}, {"line": 4, "character": 9}
    out = []
    for _ in range(rounds):
        if until is not None and until in c.diagnosed:
            break
        doc = {"uri": uri}
        h = c.request("textDocument/hover", {"textDocument": doc, "position": pos_hover})
        d = c.request("textDocument/definition", {"textDocument": doc, "position": pos_def})
        out.append((h, d))
        time.sleep(0.02)  # spread the requests over the compile
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    sizes = [5_000] if ap.parse_args().quick else [5_000, 20_000, 40_000]
    c = Client()
    small = "file:///bench/small.pflow"
    c.open(small, SMALL)
    c.wait_diagnostics(small)
    rows = []
    for n in sizes:
        uri = f"file:///bench/big{n}.pflow"
        t0 = c.open(uri, big(n))
        during = probe(c, small, rounds=200, until=uri)
        compiled = c.wait_diagnostics(uri) - t0
        after = probe(c, uri, rounds=20)
        for label, times in (("beside, during the compile", during), ("in the big document, after", after)):
            flat = [t for pair in times for t in pair]
            if flat:
                rows.append((n, compiled, label, len(flat), statistics.median(flat) * 1e3, max(flat) * 1e3))
    c.close()
    print(f"{'lets':>7} {'diagnostics s':>14}  {'requests':<28} {'n':>4} {'median ms':>10} {'worst ms':>9}")
    for n, compiled, label, count, med, worst in rows:
        print(f"{n:>7,} {compiled:>14.2f}  {label:<28} {count:>4} {med:>10.1f} {worst:>9.1f}")


if __name__ == "__main__":
    main()
