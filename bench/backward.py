"""Backward interpretation time per node on an unrolled loop (scripted engine).

The workflow: one `llm` with a trainable prompt, then `for i in 0..S { q = q + "." }`:
S loop steps of two nodes each (a const and an `add`), unrolled, so the feedback on the
output passes through 2·S + 1 nodes before it reaches the one backward-engine call. The
forward runs once (not timed); then `promptc.optim.backward.backward` runs on the
failing sample `--repeat` times and the best time is divided by the number of forward
nodes. When the backward walk is linear in the nodes, that time per node is flat as S
grows (250 to 2,000 steps).

Measured on the 2-core development machine (load average about 4; best of 7, garbage
collection off while timed; seconds for one failing sample; µs per forward node;
marginal: µs per node beyond a 10-step run). "before" is f0af8b3 (GradRules walked by
optim/backward.py), run with `--before DIR` on a copy of that commit
(`git archive f0af8b3 | tar -x -C DIR`):

     steps  nodes  before s  µs/node  marginal  after s  µs/node  marginal
       250    502     0.020     38.9      27.3    0.007     14.4       0.1
       500   1002     0.065     64.7      59.6    0.009      8.5       1.3
      1000   2002     0.257    128.3     126.5    0.010      4.8       1.2
      2000   4002     0.754    188.5     187.9    0.013      3.3       1.5

Before, the marginal time per node grows with the size (quadratic: 27 -> 188 µs); after,
it stays at about 1.5 µs (linear; at 250 steps the walk is within the noise of the fixed
cost, which is why µs/node, fixed cost included, falls as the size grows).

Before, each rule looked its node up in `program.nodes` and its record in the trace by a
linear scan: quadratic. After, the program and the trace are indexed by name, and the
backward program comes pruned and ordered from the gradient pass: linear.

Run: `python bench/backward.py` (this checkout) or `python bench/backward.py --before
DIR` (both, side by side; DIR's `promptc` goes first on PYTHONPATH, the installed one
still supplies `promptc.stdlib` and the grammar, unchanged between the two).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = """
model task = "scripted/bench_backward"
param instr: prompt trainable "the instruction" = "Rewrite the text."
llm rewrite(x: text) -> text via task {{
  system "{{instr}}"
  user   "Text: {{x}}"
}}
workflow chain(x: text) -> text {{
  let q = rewrite(x)
  for i in 0..{steps} {{
    q = q + "."
  }}
  return q
}}
"""

STEPS = (250, 500, 1000, 2000)


def reply(messages: list[dict]) -> str:
    user = messages[-1]["content"]
    if "Text:" in user:  # the forward call
        return "rewritten"
    return json.dumps({"instr": "Keep the dots."})  # the backward call


def measure(steps: int, repeat: int) -> dict:
    """Best wall time of one failing sample's backward pass, and the node counts."""
    from promptc import compile_source
    from promptc.optim.backward import backward
    from promptc.runtime import scripted
    from promptc.runtime.engine import make_engine
    from promptc.runtime.interpreter import run_forward

    scripted.register("bench_backward", reply)
    program = compile_source(SOURCE.format(steps=steps), "bench.pflow")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(cache_dir=tmp, no_cache=True)
        batch = [{"x": "text", "answer": "never"}]
        traces = run_forward(program, batch, engine)
        best = float("inf")
        for _ in range(repeat):
            gc.collect()
            gc.disable()  # a collection in the timed region is noise, not the walk
            t0 = time.perf_counter()
            grads = asyncio.run(backward(program, traces, batch, [0.0], engine, context=None))
            best = min(best, time.perf_counter() - t0)
            gc.enable()
        assert grads.for_param("instr"), "the feedback must reach the trainable prompt"
    nodes = len(program.nodes)
    return {"steps": steps, "nodes": nodes, "seconds": best, "us_per_node": best / nodes * 1e6}


def run_here(steps: tuple[int, ...], repeat: int) -> list[dict]:
    """One row per size; `marginal_us` is the time per node beyond a 10-step run, i.e. with
    the fixed cost of a backward pass (the event loop, the one backward-engine call) taken out."""
    measure(10, 1)  # warm up: imports, templates, the engine's first call
    base = measure(10, repeat)
    rows = [measure(s, repeat) for s in steps]
    for r in rows:
        r["marginal_us"] = (r["seconds"] - base["seconds"]) / (r["nodes"] - base["nodes"]) * 1e6
    return rows


def run_in(checkout: str, steps: tuple[int, ...], repeat: int) -> list[dict]:
    """The same measurement with another checkout's `promptc` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(Path(checkout).resolve()))
    args = [sys.executable, __file__, "--json", "--repeat", str(repeat), "--steps", *map(str, steps)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=list(STEPS))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--before", help="another checkout to measure the same way (its promptc first on the path)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (used for --before)")
    a = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    steps = tuple(a.steps)
    if a.json:
        print(json.dumps(run_here(steps, a.repeat)))
        return
    after = run_here(steps, a.repeat)
    before = run_in(a.before, steps, a.repeat) if a.before else None
    head = f"{'steps':>6} {'nodes':>6}"
    if before:
        head += f" {'before s':>9} {'µs/node':>8} {'marginal':>9}"
    head += f" {'after s':>8} {'µs/node':>8} {'marginal':>9}"
    print(head)
    for i, row in enumerate(after):
        line = f"{row['steps']:>6} {row['nodes']:>6}"
        for r in ([before[i]] if before else []) + [row]:
            line += f" {r['seconds']:>{9 if r is not row else 8}.3f} {r['us_per_node']:>8.1f} {r['marginal_us']:>9.1f}"
        print(line)
    print("µs/node: the whole backward pass of one failing sample over the forward nodes;")
    print("marginal: µs per node beyond a 10-step run (the fixed cost taken out). Linear: flat.")


if __name__ == "__main__":
    if not os.environ.get("PYTHONPATH"):  # this checkout's promptc (--before sets another)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
