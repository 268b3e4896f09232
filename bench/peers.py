"""promptc beside DSPy, TextGrad and AdalFlow on the peers' TREC split, with the embedded model.

    python bench/peers.py                  # 300 optimization calls (about 10-20 min on 2 cores)
    python bench/peers.py --max-calls 150 --seeds 0 1 2

Runs `promptc optimize` (the CLI, in a child process) on `bench/peerbench/trec.pflow`
(the peers' starting instruction, unchanged) with the train/val/test splits the peers were
measured on, the embedded SmolLM2-135M-Instruct as task model, backward engine and
optimizer, a call budget of `--max-calls` optimization calls, and a fresh call cache per
run (so every counted call is a real one). Then prints one table: promptc's rows (test
accuracy before/after, optimization calls, tokens, wall time, and the test evaluation's
calls, which are outside the budget) and the peers' rows as `bench/peerbench/PEERS.md`
reports them (same data, model, metric; their server was llama_cpp.server with n_ctx 4096,
promptc's model runs in-process).

Nothing here is typed by hand: promptc's numbers come from the run's `summary.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PB = ROOT / "bench" / "peerbench"


def peers_rows() -> list[list[str]]:
    """The peers' rows of PEERS.md: (framework, start, optimized, calls, prompt tok, completion tok, wall)."""
    rows = []
    for line in (PB / "PEERS.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or not line.startswith("|") or set(cells[0]) <= set("-") or cells[0].startswith("framework"):
            continue
        if len(cells) >= 9:  # main table: name, start (r1 / r2), identical, optimized, calls, ptok, ctok, wall, errors
            start = cells[1].split("/")[0].strip()
            rows.append([cells[0], start, cells[3], cells[4], cells[5], cells[6], cells[7]])
        else:  # GEPA table: name, start, optimized, calls, ptok, ctok, wall
            rows.append([cells[0], cells[1], re.sub(r"\s*\(.*\)", "", cells[2]), *cells[3:7]])
    return rows


def run_promptc(max_calls: int, seed: int, steps: int, batch: int, work: Path) -> dict:
    run_dir = work / f"run-seed{seed}"
    cmd = [
        sys.executable, "-m", "promptc", "optimize", str(PB / "trec.pflow"),
        "--train", str(PB / "data/train.jsonl"), "--val", str(PB / "data/val.jsonl"),
        "--test", str(PB / "data/test.jsonl"), "--max-calls", str(max_calls), "--steps", str(steps),
        "--batch-size", str(batch), "--seed", str(seed), "--run-dir", str(run_dir),
        "--cache-dir", str(work / f"cache-seed{seed}"),
    ]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
    for var in ("PROMPTC_TASK_MODEL", "PROMPTC_TEACHER_MODEL"):
        env.pop(var, None)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"promptc optimize failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    summary["wall"] = wall
    summary["stdout"] = proc.stdout.strip()
    return summary


def fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-calls", type=int, default=300)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--work", help="folder for runs and caches (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="promptc-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        s = run_promptc(args.max_calls, seed, args.steps, args.batch_size, work)
        tr, te = s["training"], s["test"]
        name = f"promptc optimize (seed {seed}, --max-calls {args.max_calls})"
        rows.append([name, fmt(s["scores"]["test_start"]), fmt(s["scores"]["test_best"]), str(tr["requests"]),
                     str(tr["prompt_tokens"]), str(tr["completion_tokens"]), f"{s['wall']:.1f}",
                     f"{te['requests']} calls, {te['prompt_tokens'] + te['completion_tokens']} tok"])
        print(s["stdout"], file=sys.stderr)
        print(f"  val {s['scores']['start_val']:.3f} -> {s['scores']['best_val']:.3f}; changed: "
              f"{', '.join(s['changed']) or 'none'}; {s['scores']['stopped']}", file=sys.stderr)
    header = ["framework / optimizer", "test start", "test optimized", "opt calls", "opt prompt tok",
              "opt completion tok", "wall (s)", "test eval (outside the budget)"]
    print(f"TREC-6 peer split (train 60 / val 30 / test 100), SmolLM2-135M-Instruct Q4_1; runs in {work}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    for r in peers_rows():
        print("| " + " | ".join(r + ["(in wall)"]) + " |")
    print("Peers' rows: bench/peerbench/PEERS.md (their wall time includes no test evaluation; "
          "promptc's wall time includes its two test evaluations).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
