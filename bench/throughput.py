"""Throughput of the runtime against a latency-simulating OpenAI-compatible server.

    python bench/throughput.py [--latency 0.1] [--samples 500] [--serial-samples 50]
                               [--processes 0,auto] [--rounds 2]
                               [--peer-python PATH [--peer-engines auto,litellm]]
    python bench/throughput.py --processes 0,2,ray2 --levels 8,32,64 --rounds 2   # executors

1. Starts a fake OpenAI-compatible server on 127.0.0.1 (asyncio, HTTP/1.1 keep-alive,
   in a child process so that it does not share the client's GIL): every POST
   /v1/chat/completions waits `latency` seconds and answers in DSPy's field format (so
   DSPy parses it on the first try; promptc takes any text). It stops at the end.
2. Runs a one-`llm`-node workflow through `promptc.runtime.interpreter.forward` with
   model "openai/fake" pointed at that server (Engine(extra_params={"api_base",
   "api_key"})), cache disabled, at concurrency 1, 8, 32 and 64, once in-process
   ("promptc") and once per `--processes` count P > 0 with Engine(processes=P)
   ("promptc[P proc]", hosted calls in P worker processes; their CPU is counted). Concurrency 1 runs fewer
   samples (`--serial-samples`) so the run stays short; the ratio is per call count.
3. With `--peer-python PATH` (a Python with DSPy installed; DSPy is never a promptc
   dependency), bench/throughput_dspy.py runs the same one-call program
   (`dspy.Predict.batch(num_threads=c)`) in that Python against the same server, level
   by level, interleaved with promptc's runs (promptc, then each DSPy engine, `--rounds`
   times), so both see the same machine load. DSPy 3.4's default engine ("auto") sends
   OpenAI-compatible requests through its own lm15 HTTP client, not litellm; engine
   "litellm" is the like-for-like row (promptc always calls litellm). The "litellm
   calls" column says which path really served.
4. Prints per client and level: wall time, ideal = calls x latency / concurrency, ratio
   = wall / ideal, client CPU per call, the client-bound ceiling of that row
   (max(1, c x CPU per call / latency): one Python process runs on one core at a
   time), and for promptc the mean / p90 wall of a call inside the engine minus the
   server's latency (what the client adds to each call). Then the interpreter's
   overhead per node with the scripted engine, and the machine's core count and load
   average (the client is CPU-bound at high concurrency: on a shared machine the ratios
   move with the load of everything else; compare rows of one run).

Where the client CPU goes (litellm 1.110.2, sequential `litellm.completion` calls to
this server, model priced as here, cProfile / yappi on thread CPU time): ~40 % the OpenAI
SDK + httpx request, ~27 % litellm's parameter mapping and model-info lookups in
`completion`, ~15 % its response cost and metadata, ~6 % response conversion; and, on
litellm's own logging thread, its success handler building a logging payload (~10 % of
the process's CPU). promptc's engine skips that handler while no litellm callback is
registered, and prices a model litellm has no price for once instead of searching on
every call (+15 % per call otherwise; not in this bench, whose model is priced): see
promptc/runtime/hosted.py. Tried and dropped, the numbers did not support them: one
shared OpenAI client passed as `client=` (litellm already caches its clients: ~1 %),
custom per-call prices (no change). The rest is litellm's and the OpenAI SDK's own Python
path, ~5-6 ms per call on this machine, twice DSPy's own lm15 client; one process cannot
go below that (the ceiling column), so make_engine spreads hosted calls over 2 worker
processes once 8 are in flight ("promptc[auto 2p]"). Hosted calls run litellm's
synchronous `completion` on the engine's thread pool: see promptc/runtime/engine.py.

Measured (2 cores shared with other work, litellm 1.110.2, DSPy 3.4.1, `--rounds 2`;
wall / ideal per round; before: the engine before hosted.py and lazy workers, load
2.6-5.8; after: load 0.8-1.3; the dspy columns are the after run's; in the before run
dspy[litellm] was 1.12-1.14, 1.31-1.36, 2.80-3.03, 4.18-4.32 and dspy[auto] 1.08-1.09,
1.11-1.12, 1.33-1.36, 1.73-2.14):

| in flight | before: promptc / [2 proc] | after: promptc / [auto 2p] | dspy[litellm] | dspy[auto] |
|---|---|---|---|---|
| 1  | 1.09-1.11 / 1.09-1.12 | 1.07 / 1.08          | 1.08-1.09 | 1.04-1.05 |
| 8  | 1.23-1.29 / 1.16-1.22 | 1.13-1.14 / 1.11-1.12 | 1.16-1.24 | 1.09-1.10 |
| 32 | 2.31-2.48 / 2.05-2.14 | 2.13-2.48 / 1.41-1.44 | 2.53-2.68 | 1.37-1.44 |
| 64 | 4.06-4.35 / 3.37-4.37 | 3.89 (*) / 1.97-2.30  | 3.95-4.94 | 1.63-1.99 |

CPU per call at 64 in flight: promptc 6.4 ms, [auto 2p] 5.2 ms (workers included),
dspy[litellm] 7.0 ms, dspy[auto] 2.6 ms. The client-bound ceiling at 64 in flight is
64 x CPU per call / latency: 3.3 for promptc's 5.2 ms in one process, 1.65 with its two
workers on two free cores; 1.66 for dspy[auto]. 1.2 at 64 in flight would take <= 1.9 ms
of CPU per call in one process (3.75 ms over two free cores), below litellm's own path.
(*) the other round: 39.8, one call whose connection never answered, retried after the
30 s timeout; such a lost connection at 64 in flight showed up in dspy[litellm] too
(499 of 500 in the same run), not in dspy[auto]'s client.

Executors (`--processes 0,old2,2,ray2 --levels 8,32,64 --rounds 2`, one run, 2 cores
shared with other work, load 3.4 before / 7.1 after; "old 2p" the worker processes with
promptc's own pipe protocol that procpool.py replaced (runtime/workers.py, removed after
this run), "2 proc" procpool.py's pool on
multiprocessing.managers, "ray 2a" two actors of a local Ray 2.60 cluster; wall / ideal
per round, CPU per call with the workers' or actors' CPU):

| in flight | promptc | old 2p | 2 proc (procpool) | ray 2a |
|---|---|---|---|---|
| 8  | 1.17 / 1.17, 5.2 ms | 1.11 / 1.11, 5.3 ms | 1.13 / 1.14, 6.1 ms | 1.20 / 1.21, 7.2 ms |
| 32 | 1.83 / 2.16, 5.6 ms | 1.24 / 1.24, 4.2 ms | 1.39 / 1.26, 4.9 ms | 1.69 / 1.85, 7.0 ms |
| 64 | 3.98 / 2.84, 5.2 ms | 2.27 / 1.73, 4.1 ms | 2.03 / 1.73, 3.7 ms | 2.73 / 2.24, 5.3 ms |

A second run without the old pool (`--processes 0,2,ray2`, load 2.3 / 6.3): 8 in flight
1.13/1.10, 1.10/1.09, 1.15/1.13; 32: 1.51/1.63, 1.24/1.23, 1.26/1.43; 64: 2.38/2.17,
1.59/1.60, 1.90/2.17 (promptc, 2 proc, ray 2a; CPU per call 3.4-3.7, 3.1-3.7, 4.3-4.5 ms).
A local Ray actor pool did not match the worker processes at 32 and 64 in flight (Ray's
submit / result path and its asyncio actor cost ~1.5-3 ms more CPU per call, on the same
two cores as its raylet and GCS), so `processes=N` stays a process pool, rebuilt on
multiprocessing.managers, and Ray is how calls leave the machine (docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptc.runtime import providers, scripted  # noqa: E402
from promptc.runtime.engine import Engine, make_engine  # noqa: E402
from promptc.runtime.records import CallRequest  # noqa: E402

FAKE_MODEL = "openai/fake"


# --- the fake server ------------------------------------------------------------------------


class FakeServer:
    """A minimal OpenAI-compatible chat server with a fixed latency.

    It runs in a child process (its own interpreter): a server thread inside the
    benchmark process would compete with the client for the GIL and be measured as
    client overhead. `with FakeServer(0.1) as s:` starts it; leaving the block stops it.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = 0
        self.port = 0
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(latency, child), name="fake-openai", daemon=True)

    def __enter__(self) -> FakeServer:
        self._proc.start()
        if not self._conn.poll(30):
            self._proc.kill()
            raise RuntimeError("fake server did not start")
        self.port = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
            if self._conn.poll(10):
                self.requests = self._conn.recv()
        finally:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _serve(latency: float, conn) -> None:
    """Child process: serve until the parent says "stop", then report the request count."""
    state = {"requests": 0}

    async def respond(method: str, path: str, body: bytes) -> tuple[str, dict]:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return "404 Not Found", {"error": {"message": f"no route {method} {path}"}}
        req = json.loads(body or b"{}")
        state["requests"] += 1
        await asyncio.sleep(latency)
        last = (req.get("messages") or [{}])[-1].get("content") or ""
        # DSPy's field format, so that DSPy parses the answer on its first call
        text = "[[ ## answer ## ]]\nfake answer to " + str(last)[-40:] + "\n\n[[ ## completed ## ]]"
        pt, ct = len(str(last).split()), len(text.split())
        return "200 OK", {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, path, _ = line.decode("latin-1").split(" ", 2)
                length = 0
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                status, payload = await respond(method, path, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode() + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # blocks until "stop" (or the parent dies)
        server.close()
        conn.send(state["requests"])

    try:
        asyncio.run(main())
    except (EOFError, KeyboardInterrupt):
        pass


# --- drivers ----------------------------------------------------------------------------------

ONE_NODE = """
model task = "{model}"

llm answer(question: text) -> text via task {{
  user "Question: {{question}}"
}}

workflow one(question: text) -> text {{
  let raw = answer(question)
  return raw
}}
"""

CHAIN = """
use std.text {{ strip, lower, first_line, concat }}
model task = "{model}"

llm answer(question: text) -> text via task {{
  user "Question: {{question}}"
}}

workflow chain(question: text) -> text {{
  let raw = answer(question)
  let a = strip(raw)
  let b = lower(a)
  let c = first_line(b)
  let d = concat(c, question)
  let e = strip(d)
  let f = lower(e)
  return f
}}
"""


def load_interpreter():
    try:
        from promptc.compiler import compile_source
        from promptc.runtime.interpreter import forward
    except ImportError as e:
        return None, None, f"n/a (interpreter missing: {e})"
    return compile_source, forward, None


class CallTimes:
    """Forwards to an Engine and keeps each call's own wall time (`CallResult.seconds`)."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.accounting, self.seconds = inner, inner.accounting, []

    async def call(self, req, **kw):
        result = await self.inner.call(req, **kw)
        self.seconds.append(result.seconds)
        return result


@dataclass
class Row:
    client: str
    level: int
    calls: int
    ok: int
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # client CPU seconds per run
    call_seconds: list[float] = field(default_factory=list)  # promptc: each call inside the engine
    litellm_calls: int | None = None  # peers: calls that went through litellm.completion


def run_level(
    engine: Engine, compile_source, forward, n: int, concurrency: int, run_id: str
) -> tuple[float, int, float, list[float]]:
    """(wall s, samples ok, client CPU s, per-call seconds) for n samples at `concurrency`."""
    timed = CallTimes(engine)
    batch = [{"question": f"question {run_id} number {i}"} for i in range(n)]
    cpu0 = client_cpu(engine)
    if forward is not None:
        program = compile_source(ONE_NODE.format(model=FAKE_MODEL), file="<bench>")

        async def go():
            return await forward(program, batch, timed, concurrency=concurrency)

        start = time.perf_counter()
        traces = asyncio.run(go())
        wall = time.perf_counter() - start
        failed = [t.error for t in traces if not t.ok]
    else:
        async def go():
            sem = asyncio.Semaphore(concurrency)

            async def one(sample):
                async with sem:
                    return await timed.call(CallRequest(
                        model=FAKE_MODEL, messages=({"role": "user", "content": "Question: " + sample["question"]},)))

            return await asyncio.gather(*(one(s) for s in batch))

        start = time.perf_counter()
        results = asyncio.run(go())
        wall = time.perf_counter() - start
        failed = [r.error for r in results if not r.ok]
    if failed:
        print(f"  warning: {len(failed)} failed samples at concurrency {concurrency}: {failed[0]}", file=sys.stderr)
    return wall, n - len(failed), client_cpu(engine) - cpu0, timed.seconds


def helper_pids(engine: Engine) -> list[int]:
    """The processes the engine's executor sends calls to: worker processes, Ray actors."""
    executor = engine.executor
    workers = getattr(executor, "workers", None)
    if workers is not None:
        return [p.pid for p in workers.procs]
    return list(getattr(executor, "pids", []))


def client_cpu(engine: Engine) -> float:
    """CPU seconds of this process and of the engine's worker processes or Ray actors
    (Linux /proc; a Ray cluster's own daemons are not counted)."""
    total = time.process_time()
    for pid in helper_pids(engine):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


class Peer:
    """bench/throughput_dspy.py running under another Python (with DSPy), one engine."""

    def __init__(self, python: str, base_url: str, engine: str) -> None:
        self.name = f"dspy[{engine}]"
        script = Path(__file__).with_name("throughput_dspy.py")
        self._proc = subprocess.Popen(
            [python, str(script), "--base-url", base_url, "--engine", engine],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.info = self._reply()

    def _reply(self) -> dict:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:  # DSPy may print other lines; ours are JSON objects
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"{self.name} exited with {self._proc.wait()} (is DSPy installed in that Python?)")

    def run(self, concurrency: int, n: int, run_id: str) -> dict:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{concurrency} {n} {run_id}\n")
        self._proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def make_engines(spec: str, base_url: str):
    """(row name, Engine) for each entry of --processes: P worker processes, or "auto"
    (make_engine's default: engine.AUTO_PROCESSES processes from engine.AUTO_FROM calls in
    flight on a machine with the cores, PROMPTC_ENGINE_PROCESSES if set)."""
    common = {"timeout": 30, "retries": 2, "extra_params": {"api_base": base_url, "api_key": "sk-fake-local-benchmark"}}
    for p in spec.split(","):
        if p.strip().startswith("ray"):  # "rayN": N actors on a local Ray cluster (one cluster for all rows)
            from promptc.runtime.ray_executor import RayTarget

            n = int(p.strip()[3:] or 2)
            yield f"promptc[ray {n}a]", make_engine(no_cache=True, ray=RayTarget("local", actors=n), **common)
        elif p.strip() == "auto":
            engine = make_engine(no_cache=True, **common)
            yield f"promptc[auto {engine.processes}p]", engine
        else:
            n = int(p)
            yield ("promptc" if n == 0 else f"promptc[{n} proc]"), Engine(cache=None, processes=n, **common)


def interpreter_overhead(compile_source, forward, samples: int = 200) -> tuple[str, str]:
    """(full path us per llm node, interpreter-only us per node) on the scripted engine."""
    if forward is None:
        return "n/a (interpreter missing)", "n/a (interpreter missing)"
    model = scripted.register("bench-echo", lambda m: "Echo\n" + m[-1]["content"])
    program = compile_source(CHAIN.format(model=model), file="<bench>")
    nodes = len(program.nodes)

    class TimedEngine:
        """Forwards to an Engine and sums the time spent inside engine.call."""

        def __init__(self, inner: Engine) -> None:
            self.inner, self.accounting, self.seconds = inner, inner.accounting, 0.0

        async def call(self, req, **kw):
            t = time.perf_counter()
            try:
                return await self.inner.call(req, **kw)
            finally:
                self.seconds += time.perf_counter() - t

    engine = TimedEngine(Engine(cache=None, retries=0))
    asyncio.run(forward(program, [{"question": "warm up"}], engine, concurrency=1))
    engine.seconds = 0.0
    batch = [{"question": f"q {i}"} for i in range(samples)]
    start = time.perf_counter()
    traces = asyncio.run(forward(program, batch, engine, concurrency=1))
    wall = time.perf_counter() - start
    assert all(t.ok for t in traces), traces[0].error
    per_call = engine.seconds / samples * 1e6
    per_node = (wall - engine.seconds) / (samples * nodes) * 1e6
    return (
        f"{per_call:,.0f} us per scripted llm call (engine + litellm)",
        f"{per_node:,.1f} us per node ({nodes} nodes/sample: 1 input, 1 llm, 6 functional; engine time excluded)",
    )


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # not available on this platform
        return "n/a"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--serial-samples", type=int, default=50)
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each client per level, interleaved")
    ap.add_argument("--peer-python", help="a Python with DSPy installed: run DSPy's row too")
    ap.add_argument("--peer-engines", default="auto,litellm", help="DSPy engines to run (auto, litellm)")
    ap.add_argument("--processes", default="0,auto",
                    help="promptc rows: Engine(processes=P) for each P; auto: make_engine's default")
    args = ap.parse_args(argv)

    load_before = _load()
    compile_source, forward, missing = load_interpreter()
    providers.ensure_litellm()
    # a price for the fake model: cost is exercised, and litellm's lookup is a dict hit
    providers.register_price(FAKE_MODEL, 1e-7, 2e-7)
    levels = [int(x) for x in args.levels.split(",")]
    rows: dict[tuple[str, int], Row] = {}
    with FakeServer(args.latency) as server:
        engines = dict(make_engines(args.processes, server.base_url))
        peers = [Peer(args.peer_python, server.base_url, e) for e in args.peer_engines.split(",")] if args.peer_python else []
        try:
            # warm up connections, litellm's lazy imports and the worker processes (not measured)
            for engine in engines.values():
                run_level(engine, compile_source, forward, 16, 8, "warmup")
                deadline = time.monotonic() + 120
                while (w := getattr(engine.executor, "workers", None)) is not None and not w.is_ready and time.monotonic() < deadline:
                    time.sleep(0.1)  # lazily started workers: ready before the measured runs
                if helper_pids(engine):  # and warm: a worker's first litellm calls import more
                    run_level(engine, compile_source, forward, 16, 8, "warmup2")
            for level in levels:
                n = args.serial_samples if level == 1 else args.samples
                for k in range(args.rounds):
                    run_id = f"c{level}r{k}"
                    for name, engine in engines.items():
                        wall, ok, cpu, seconds = run_level(engine, compile_source, forward, n, level, run_id)
                        row = rows.setdefault((name, level), Row(name, level, n, 0))
                        row.walls.append(wall), row.cpus.append(cpu), row.call_seconds.extend(seconds)
                        row.ok += ok
                    for peer in peers:
                        got = peer.run(level, n, run_id)
                        row = rows.setdefault((peer.name, level), Row(peer.name, level, n, 0, litellm_calls=0))
                        row.walls.append(got["wall"]), row.cpus.append(got["cpu"])
                        row.ok += got["ok"]
                        row.litellm_calls = (row.litellm_calls or 0) + got["litellm_calls"]
        finally:
            for engine in sorted(engines.values(), key=lambda e: bool(getattr(e.executor, "actors", None))):
                engine.close()  # a Ray engine last: closing it stops the cluster the others share
            for peer in peers:
                peer.close()
    served = server.requests
    load_after = _load()

    driver = "interpreter.forward (1 llm node)" if forward is not None else f"Engine.call ({missing})"
    print(f"throughput: fake OpenAI server, latency {args.latency * 1000:.0f} ms, promptc driver {driver}, cache off, "
          f"{args.rounds} round(s) per level, clients interleaved")
    for peer in peers:
        print(f"peer {peer.name}: DSPy {peer.info.get('dspy')}, litellm {peer.info.get('litellm')} ({args.peer_python})")
    print(f"machine: {_cores()} usable cores, load average (1 min) {load_before} before, {load_after} after")
    head = (f"{'client':<16} {'conc':>4} {'calls':>5} {'ok':>5} {'wall s':>6} {'ideal s':>7} {'ratio':>11} "
            f"{'cpu ms/call':>11} {'ceiling':>7} {'call-latency ms mean/p90':>24} {'litellm calls':>13}")
    print(head)
    names = list(engines) + [p.name for p in peers]
    for level in levels:
        for name in names:
            row = rows[(name, level)]
            ideal = row.calls * args.latency / level
            ratios = " / ".join(f"{w / ideal:.2f}" for w in row.walls)
            cpu_ms = 1000 * sum(row.cpus) / (row.calls * len(row.cpus))
            ceiling = max(1.0, level * cpu_ms / 1000 / args.latency)
            over = "-"
            if row.call_seconds:
                extra = sorted(1000 * (x - args.latency) for x in row.call_seconds)
                over = f"{sum(extra) / len(extra):.1f} / {extra[int(0.9 * (len(extra) - 1))]:.1f}"
            via = "-" if row.litellm_calls is None else str(row.litellm_calls)
            wall = sum(row.walls) / len(row.walls)
            print(f"{name:<16} {level:>4} {row.calls:>5} {row.ok // len(row.walls):>5} {wall:>6.2f} {ideal:>7.2f} "
                  f"{ratios:>11} {cpu_ms:>11.2f} {ceiling:>7.2f} {over:>24} {via:>13}")
    print("ratio: wall / ideal per round; cpu: the client's, worker processes included; ceiling: "
          "max(1, c x cpu per call / latency), the best ratio one client process can reach at that CPU cost "
          f"(one core under the GIL; P worker processes can divide it by up to min(P, {_cores()} cores))")
    print(f"server saw {served} requests")
    for name, engine in engines.items():
        print(f"{name}: {engine.accounting.summary_line()}")
    if any(level == 1 for level in levels):
        print(f"(concurrency 1 ran {args.serial_samples} samples instead of {args.samples} to keep the run short)")
    full, per_node = interpreter_overhead(compile_source, forward)
    print(f"scripted engine: {full}")
    print(f"interpreter overhead: {per_node}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
