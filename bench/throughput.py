"""Throughput of the runtime against a latency-simulating OpenAI-compatible server.

    python bench/throughput.py [--latency 0.1] [--samples 500] [--serial-samples 50]

1. Starts a fake OpenAI-compatible server on 127.0.0.1 (asyncio, HTTP/1.1 keep-alive,
   in a child process so that it does not share the client's GIL): every POST /v1/chat/completions waits `latency` seconds and returns a
   valid chat completion with usage. It stops itself at the end.
2. Runs a one-`llm`-node workflow through `promptc.runtime.interpreter.forward` (falling
   back to `Engine.call` directly if the interpreter is not there) with model
   "openai/fake" pointed at that server (Engine(extra_params={"api_base", "api_key"})),
   cache disabled, at concurrency 1, 8, 32 and 64. Concurrency 1 runs fewer samples
   (`--serial-samples`, default 50) so the whole benchmark stays around a minute;
   the ratio is per call count, so it is comparable.
3. Prints: concurrency, calls, wall time, ideal = calls x latency / concurrency, and
   ratio = wall / ideal (the aim: <= 1.2 at every level), then the interpreter's
   overhead per node with the scripted engine (us per node), and the machine's core
   count and load average (the client is CPU-bound: on a shared machine the ratios move
   with the load of everything else).

Where the client CPU goes (cProfile of 300 calls through Engine.call at concurrency 32,
litellm 1.110.2, litellm's worker-thread `completion()` profiled inline): ~40 % in the
OpenAI SDK + httpx + aiohttp request/response path, ~22 % in litellm's synchronous
`completion()` (provider resolution, parameter mapping, logging object; litellm runs it
on a worker thread), ~13 % in response metadata (11 % its cost calculation), ~7 % in
the async success logging, ~3 % in function_setup, ~14 % asyncio, engine and
interpreter. The engine's own per-call work is small: cache key ~20 us, sqlite put
~110 us, get ~20 us, accounting ~10 us. Documented litellm switches tried, none
measurably better within the noise: turn_off_message_logging, an explicit
custom_llm_provider, a shared aiohttp session (shared_session);
disable_aiohttp_transport (httpx) cost more (one run: 16.5 vs 11.9 ms CPU per call). So the ratio at concurrency c
cannot go below max(1, c x CPU-per-call / latency), which the last lines print.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptc.runtime import providers, scripted  # noqa: E402
from promptc.runtime.engine import Engine  # noqa: E402
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
        text = "fake answer to " + str(last)[:40]
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


def run_level(
    engine: Engine, compile_source, forward, n: int, concurrency: int, run_id: str
) -> tuple[float, int, float]:
    """(wall seconds, samples ok, client CPU seconds) for n samples at `concurrency`."""
    cpu0 = time.process_time()
    batch = [{"question": f"question {run_id} number {i}"} for i in range(n)]
    if forward is not None:
        program = compile_source(ONE_NODE.format(model=FAKE_MODEL), file="<bench>")

        async def go():
            return await forward(program, batch, engine, concurrency=concurrency)

        start = time.perf_counter()
        traces = asyncio.run(go())
        wall = time.perf_counter() - start
        failed = [t.error for t in traces if not t.ok]
    else:
        async def go():
            sem = asyncio.Semaphore(concurrency)

            async def one(sample):
                async with sem:
                    return await engine.call(CallRequest(
                        model=FAKE_MODEL, messages=({"role": "user", "content": "Question: " + sample["question"]},)))

            return await asyncio.gather(*(one(s) for s in batch))

        start = time.perf_counter()
        results = asyncio.run(go())
        wall = time.perf_counter() - start
        failed = [r.error for r in results if not r.ok]
    if failed:
        print(f"  warning: {len(failed)} failed samples at concurrency {concurrency}: {failed[0]}", file=sys.stderr)
    return wall, n - len(failed), time.process_time() - cpu0


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
    args = ap.parse_args(argv)

    load_before = _load()
    compile_source, forward, missing = load_interpreter()
    litellm = providers.ensure_litellm()
    # a price for the fake model: litellm's cost lookup is a dict hit, and cost is exercised
    providers.register_price(FAKE_MODEL, 1e-7, 2e-7)
    del litellm
    rows = []
    with FakeServer(args.latency) as server, tempfile.TemporaryDirectory():
        engine = Engine(
            cache=None, timeout=30, retries=2,
            extra_params={"api_base": server.base_url, "api_key": "sk-fake-local-benchmark"},
        )
        # warm up connections and litellm's lazy imports (not measured)
        run_level(engine, compile_source, forward, 16, 8, "warmup")
        for level in [int(x) for x in args.levels.split(",")]:
            n = args.serial_samples if level == 1 else args.samples
            wall, ok, cpu = run_level(engine, compile_source, forward, n, level, f"c{level}")
            ideal = n * args.latency / level
            rows.append((level, n, ok, wall, ideal, wall / ideal, cpu / n * 1000))
        totals = engine.accounting.totals()
    served = server.requests
    load_after = _load()

    driver = "interpreter.forward (1 llm node)" if forward is not None else f"Engine.call ({missing})"
    print(f"throughput: fake OpenAI server, latency {args.latency * 1000:.0f} ms, driver {driver}, cache off")
    print(f"machine: {_cores()} usable cores, load average (1 min) {load_before} before, {load_after} after "
          "(ratios above 1 at high concurrency are client CPU: see the ceiling line)")
    print(f"{'concurrency':>11}  {'calls':>5}  {'ok':>5}  {'wall s':>7}  {'ideal s':>7}  {'ratio':>5}  {'client cpu ms/call':>18}")
    for level, n, ok, wall, ideal, ratio, cpu_ms in rows:
        print(f"{level:>11}  {n:>5}  {ok:>5}  {wall:>7.2f}  {ideal:>7.2f}  {ratio:>5.2f}  {cpu_ms:>18.1f}")
    cpu_ms = sum(r[6] * r[1] for r in rows) / max(1, sum(r[1] for r in rows))
    print(f"client-bound ceiling: ~{1000 / cpu_ms:,.0f} calls/s at {cpu_ms:.1f} ms CPU per call "
          f"(best possible ratio at concurrency c: max(1, c x {cpu_ms / 1000:.4f} / {args.latency:g}))")
    print(f"server saw {served} requests; {engine.accounting.summary_line()}; cost ${totals.cost:.6f}")
    if any(level == 1 for level, *_ in rows):
        print(f"(concurrency 1 ran {args.serial_samples} samples instead of {args.samples} to keep the run short)")
    full, per_node = interpreter_overhead(compile_source, forward)
    print(f"scripted engine: {full}")
    print(f"interpreter overhead: {per_node}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
