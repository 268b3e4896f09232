"""Nearest-demos pools against fixed demo sets, on tasks other than TREC: the evidence for
the demo race's tie rule (promptc.optim.race.final_pick; docs/training.md).

    python bench/demo_prior.py                       # every task, 30 rows each
    python bench/demo_prior.py --rows 20 --fixed 3

Tasks: BBH object counting and word sorting (exact match, their validation rows) and
HotpotQA answered from its supporting sentences (token F1, the router example's
validation and test rows; `bench/prior/evidence_qa.pflow`). For each task, the labeled
pool of its training split (free: no call) gives the candidates the race would offer
(`race.candidates`, seeded): the nearest-neighbour pools at `max` and about half of it,
and `--fixed` fixed sets drawn in several sizes. Each is scored on the first `--rows`
rows with the embedded model (a fresh call cache unless --reuse-cache), and every
nearest pool is compared with every fixed set row by row (paired: wins, losses, mean
gain). Prints one table; nothing is typed by hand. TREC rows are never used.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (workflow, data folder, the splits scored on)
TASKS = {
    "object_counting": ("examples/object_counting/object_counting.pflow", "examples/object_counting", ("val",)),
    "word_sorting": ("examples/word_sorting/word_sorting.pflow", "examples/word_sorting", ("val",)),
    "evidence_qa": ("bench/prior/evidence_qa.pflow", "examples/router", ("val", "test")),
}


def run_task(name: str, args, engine) -> list[tuple]:
    from promptc.compiler import compile_file
    from promptc.optim import race
    from promptc.optim.demos import Pool, free_labeled, output_labels
    from promptc.data import read_data
    from promptc.runtime.evaluate import score
    from promptc.runtime.interpreter import run_forward

    workflow, folder, splits = TASKS[name]
    program = compile_file(ROOT / workflow)
    train = list(read_data(str(ROOT / folder / "train.jsonl")))
    val = [r for split in splits for r in list(read_data(str(ROOT / folder / f"{split}.jsonl")))][: args.rows]
    dparam = next(p for p in program.params if p.kind == "demos")
    pool = Pool().add(free_labeled(program, dparam.name, train))
    rng = random.Random(args.seed)
    sets = race.candidates(
        pool, race.Choice.current(dparam), dparam.max_demos or 4, output_labels(program, dparam.name),
        2 + args.fixed + 1, rng,
    )[1:]  # without the current value (no demos)
    scored = []
    for choice in sets:
        prog = program.with_param(choice.of(dparam))
        t0 = time.monotonic()
        traces = run_forward(prog, val, engine, concurrency=args.concurrency)
        s = [float(x) for x in score(prog, traces, val)]
        scored.append((choice, s, time.monotonic() - t0))
        print(f"  {name}: {label(choice)}: {sum(s) / len(s):.3f} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    out = []
    for c1, s1, _ in scored:
        if not c1.nearest:
            continue
        for c2, s2, _ in scored:
            if c2.nearest:
                continue
            wins = sum(a > b for a, b in zip(s1, s2))
            losses = sum(a < b for a, b in zip(s1, s2))
            out.append((name, label(c1), sum(s1) / len(s1), label(c2), sum(s2) / len(s2), wins, losses, len(s1)))
    return out


def label(c) -> str:
    return f"nearest {c.nearest} of {len(c.demos)}" if c.nearest else f"{len(c.demos)} fixed"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--fixed", type=int, default=3, help="fixed sets per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--run-dir", default="runs/demo-prior")
    ap.add_argument("--reuse-cache", action="store_true", help="keep the run folder's call cache (default: a fresh one)")
    args = ap.parse_args(argv)
    from promptc.runtime.engine import make_engine

    cache = Path(args.run_dir) / "cache"
    if not args.reuse_cache:
        shutil.rmtree(cache, ignore_errors=True)
    engine = make_engine(cache_dir=cache)
    t0 = time.monotonic()
    rows = []
    try:
        for name in args.tasks:
            rows += run_task(name, args, engine)
    finally:
        engine.close()
    print(f"Nearest-demos pools vs fixed sets, first {args.rows} held-out rows, seed {args.seed}, embedded model")
    print("| task | nearest pool | mean | fixed set | mean | rows nearest better | rows fixed better | rows |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]} | {r[4]:.3f} | {r[5]} | {r[6]} | {r[7]} |")
    w, l = sum(r[5] for r in rows), sum(r[6] for r in rows)
    print(f"pairs: {len(rows)}; nearest ahead in {sum(r[2] > r[4] for r in rows)}, behind in {sum(r[2] < r[4] for r in rows)};"
          f" rows: nearest better {w}, fixed better {l}; wall {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
