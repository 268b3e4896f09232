"""Rows per second in-process and on Ray actors, the per-call cost Ray adds, and the
driver's own ceiling (docs/scale.md reads this table).

    python bench/scale.py [--rows 400] [--latency 0.1] [--concurrency 32]
                          [--local-rows 24] [--local-concurrency 4] [--skip-local]

1. Fake hosted server (bench/throughput.py's FakeServer: an OpenAI-compatible server on
   127.0.0.1 in its own process, `--latency` seconds per request): `promptc.evaluate` of
   a one-`llm` workflow on `--rows` rows at `--concurrency`, (a) in-process (the
   engine's threads, no worker processes), (b) on a local Ray cluster (started here on
   127.0.0.1, 2 CPUs) with 1 and 2 actors. Cache off.
2. Embedded model (SmolLM2-135M through llama-cpp-python): examples/trec/trec.pflow on
   `--local-rows` rows of examples/trec/test.jsonl at `--local-concurrency`, the same
   three ways: in-process (local.py's pool: one model instance per core) and 1 or 2
   actors (one instance each, its GGUF loaded once per actor). The scores must agree.
3. The per-call cost Ray adds: 200 sequential calls of a scripted echo (no latency), in
   the engine's process and on one actor; the difference is Ray's round trip (submit,
   actor, result) per call.
4. The driver's ceiling, the calls per second one driver process can feed whatever the
   actors, on 5 x `--rows` rows: (a) cache off and an executor that answers at once
   (interpreter, the engine's request building, retry loop, accounting; no litellm);
   (b) the same rows again with every call a cache hit (interpreter, the on-disk cache's
   lookup, accounting).
   Budgets are counters compared in the same loop (optim/budget): no separate cost.

Prints one table: mode, rows, wall seconds, rows per second, score, calls, the driver
process's CPU per row, and the machine's cores and load (a shared machine: compare rows
of one run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import promptc  # noqa: E402
from promptc.runtime import providers, scripted  # noqa: E402
from promptc.runtime.engine import Engine, make_engine  # noqa: E402
from promptc.runtime.records import CallRequest  # noqa: E402
from promptc.runtime.wire import Answer  # noqa: E402
from throughput import FAKE_MODEL, FakeServer, _cores, _load  # noqa: E402

ONE_NODE = """
use std.metrics { exact_match }
model task = "%s"

llm answer(question: text) -> text via task {
  user "Question: {question}"
}

workflow one(question: text) -> text {
  return answer(question)
}

train one { metric exact_match }
"""


class Row:
    def __init__(
        self, section: str, mode: str, rows: int, wall: float, score: float | None, calls: int, cpu: float | None = None
    ) -> None:
        self.section, self.mode, self.rows, self.wall, self.score, self.calls = section, mode, rows, wall, score, calls
        self.cpu = cpu  # the driver process's CPU seconds

    def line(self) -> str:
        score = "-" if self.score is None else f"{self.score:.3f}"
        rate = self.rows / self.wall if self.wall > 0 else float("inf")
        cpu = "-" if self.cpu is None else f"{1000 * self.cpu / max(self.rows, 1):.2f}"
        return (f"{self.section:<10} {self.mode:<30} {self.rows:>6} {self.wall:>8.2f} {rate:>9.1f} "
                f"{score:>6} {self.calls:>6} {cpu:>10}")


LAST_CPU = [0.0]


def evaluate(path: Path | str, rows: list[dict], engine: Engine, concurrency: int) -> tuple[float, float, int]:
    """(wall seconds, score, calls) of promptc.evaluate on `rows` with `engine`; the
    driver's CPU seconds in LAST_CPU[0]."""
    before = engine.accounting.totals().calls
    cpu = time.process_time()
    start = time.perf_counter()
    ev = promptc.evaluate(str(path), rows, engine=engine, concurrency=concurrency)
    wall = time.perf_counter() - start
    LAST_CPU[0] = time.process_time() - cpu
    return wall, ev.score, engine.accounting.totals().calls - before


def engines(ray_target, **common):
    """(mode, engine factory) for in-process, 1 actor and 2 actors."""
    yield "in-process", lambda: make_engine(ray="", processes=0, **common)
    for n in (1, 2):
        yield f"ray, {n} actor{'s' if n > 1 else ''}", lambda n=n: make_engine(ray=ray_target(actors=n), **common)


def hosted_section(args, ray_target, table: list[Row]) -> None:
    providers.register_price(FAKE_MODEL, 1e-7, 2e-7)
    path = Path(args.work) / "one.pflow"
    path.write_text(ONE_NODE % FAKE_MODEL, encoding="utf-8")
    rows = [{"question": f"question {i}", "answer": "x"} for i in range(args.rows)]
    with FakeServer(args.latency) as server:
        common = {"no_cache": True, "timeout": 30, "retries": 2,
                  "extra_params": {"api_base": server.base_url, "api_key": "sk-fake-local-benchmark"}}
        for mode, make in engines(ray_target, **common):
            engine = make()
            try:
                evaluate(path, rows[:16], engine, 8)  # warm: connections, litellm's lazy imports
                wall, score, calls = evaluate(path, rows, engine, args.concurrency)
            finally:
                engine.close()
            table.append(Row("hosted", f"{mode} (c={args.concurrency})", len(rows), wall, score, calls, LAST_CPU[0]))
        ideal = args.rows * args.latency / args.concurrency
        table.append(Row("hosted", "ideal (rows x latency / c)", len(rows), ideal, None, 0))


class Instant:
    """An executor that answers every attempt at once: what is left is the driver's cost."""

    async def run(self, attempt) -> Answer:
        return Answer("x", 3, 1, 0.0)

    def close(self) -> None:
        pass


def driver_section(args, table: list[Row]) -> None:
    path = Path(args.work) / "instant.pflow"
    path.write_text(ONE_NODE % "openai/instant", encoding="utf-8")
    rows = [{"question": f"question {i}", "answer": "x"} for i in range(args.rows * 5)]
    engine = make_engine(no_cache=True, ray="", processes=0, executor=Instant())
    try:
        evaluate(path, rows[:50], engine, args.concurrency)
        wall, score, calls = evaluate(path, rows, engine, args.concurrency)
    finally:
        engine.close()
    table.append(Row("driver", "instant executor, cache off", len(rows), wall, score, calls, LAST_CPU[0]))
    engine = make_engine(cache_dir=Path(args.work) / "cache", ray="", processes=0, executor=Instant())
    try:
        evaluate(path, rows, engine, args.concurrency)  # fills the cache
        wall, score, calls = evaluate(path, rows, engine, args.concurrency)
        hits = engine.accounting.totals().cache_hits
    finally:
        engine.close()
    table.append(Row("driver", f"every call a cache hit ({hits})", len(rows), wall, score, calls, LAST_CPU[0]))


def overhead_section(ray_target, table: list[Row], n: int = 200) -> dict[str, float]:
    model = scripted.register("scale-echo", lambda m: "echo " + m[-1]["content"])
    per_call = {}
    for mode, make in list(engines(ray_target, no_cache=True))[:2]:
        engine = make()

        async def run(engine=engine):
            for i in range(n):
                await engine.call(CallRequest(model=model, messages=({"role": "user", "content": f"q{i}"},)))

        try:
            asyncio.run(run())  # warm
            start = time.perf_counter()
            asyncio.run(run())
            wall = time.perf_counter() - start
        finally:
            engine.close()
        per_call[mode] = 1000 * wall / n
        table.append(Row("per call", f"{mode}, sequential", n, wall, None, n))
    return per_call


def local_section(args, ray_target, table: list[Row]) -> None:
    from promptc.runtime import local

    problem = local.available("default")
    if problem is not None:
        print(f"embedded model: skipped ({problem})")
        return
    rows = [json.loads(line) for line in (ROOT / "examples/trec/test.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: args.local_rows]
    path = ROOT / "examples/trec/trec.pflow"
    for mode, make in engines(ray_target, no_cache=True):
        engine = make()
        try:
            evaluate(path, rows[:2], engine, 2)  # the model loaded (per actor: each loads its own)
            wall, score, calls = evaluate(path, rows, engine, args.local_concurrency)
        finally:
            engine.close()
        table.append(Row("embedded", f"{mode} (c={args.local_concurrency})", len(rows), wall, score, calls,
                         LAST_CPU[0]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--local-rows", type=int, default=24)
    ap.add_argument("--local-concurrency", type=int, default=4)
    ap.add_argument("--skip-local", action="store_true", help="leave out the embedded model (minutes)")
    ap.add_argument("--work", default=None, help="a scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)

    import tempfile

    import ray

    from promptc.runtime.ray_executor import RayTarget

    load_before = _load()
    table: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="promptc-scale-") as tmp:
        args.work = args.work or tmp
        ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, logging_level="WARNING")
        try:
            per_call = overhead_section(lambda actors: RayTarget("local", actors=actors), table)
            hosted_section(args, lambda actors: RayTarget("local", actors=actors), table)
            driver_section(args, table)
            if not args.skip_local:
                local_section(args, lambda actors: RayTarget("local", actors=actors), table)
        finally:
            ray.shutdown()
    print(f"scale: {_cores()} usable cores, load average (1 min) {load_before} before, {_load()} after; "
          f"Ray {ray.__version__}, a local cluster of 2 CPUs on 127.0.0.1, actors of 1 CPU")
    print(f"{'section':<10} {'mode':<30} {'rows':>6} {'wall s':>8} {'rows/s':>9} {'score':>6} {'calls':>6} "
          f"{'driver CPU':>10}")
    for row in table:
        print(row.line())
    print("driver CPU: ms of the driver process's CPU per row (one call a row): in-process, everything; "
          "on Ray, the driver's share (submitting, awaiting, bookkeeping)")
    modes = list(per_call)
    if len(modes) == 2:
        print(f"Ray adds {per_call[modes[1]] - per_call[modes[0]]:.2f} ms per call "
              f"({per_call[modes[0]]:.2f} ms in-process, {per_call[modes[1]]:.2f} ms on one actor, sequential)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
