"""DSPy's side of bench/throughput.py: run by `--peer-python` (a Python with DSPy), never
imported by promptc. DSPy stays out of promptc's dependencies.

    PEER_PYTHON bench/throughput_dspy.py --base-url URL --engine auto|litellm

The same one-call program as promptc's (`dspy.Predict("question -> answer")` with
`Predict.batch(num_threads=c)`, DSPy's cache and retries off) against the same server.
It prints one JSON line when ready, then answers each request line "CONCURRENCY N RUN_ID"
on stdin with one JSON line: wall seconds, client CPU seconds, answered samples, and how
many calls went through `litellm.completion` (DSPy 3.4's default engine "auto" sends
OpenAI-compatible requests through its own lm15 client instead of litellm; "litellm"
forces litellm, the path promptc always takes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--engine", default="auto")
    args = ap.parse_args()

    import dspy
    import litellm

    counted = {"calls": 0}
    completion = litellm.completion

    def counting(*a, **kw):
        counted["calls"] += 1
        return completion(*a, **kw)

    litellm.completion = counting
    lm = dspy.LM("openai/fake", api_base=args.base_url, api_key="sk-fake-local-benchmark",
                 cache=False, num_retries=0, engine=args.engine)
    dspy.configure(lm=lm)
    predict = dspy.Predict("question -> answer")

    def run(c: int, n: int, run_id: str) -> dict:
        examples = [dspy.Example(question=f"question {run_id} number {i}").with_inputs("question") for i in range(n)]
        before = counted["calls"]
        cpu, start = time.process_time(), time.perf_counter()
        out = predict.batch(examples, num_threads=c, max_errors=n, return_failed_examples=False,
                            disable_progress_bar=True)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        ok = sum(1 for o in out if o is not None and getattr(o, "answer", None))
        return {"wall": wall, "cpu": cpu, "ok": ok, "litellm_calls": counted["calls"] - before}

    run(8, 16, "warmup")
    print(json.dumps({"ready": True, "dspy": dspy.__version__, "litellm": _version("litellm")}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        c, n, run_id = line.split()
        print(json.dumps(run(int(c), int(n), run_id)), flush=True)
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    raise SystemExit(main())
