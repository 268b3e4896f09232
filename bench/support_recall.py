"""Does a credited step's demo set, chosen by its race, retrieve better on held-out rows?

    python bench/support_recall.py --run-dir runs/bench-multistep-400/multihop --rows 30

Reads a finished training run of examples/multihop (its checkpoint's demo pools and its
history), rebuilds the demo set the `query_shots` race picked (whatever the gate then
decided), and runs the workflow cut to what the credit needs (promptc.optim.credit.
race_program: the two queries and the notes between them) on the first `--rows` test rows,
with the starting value and with the race's pick. It prints, for each, the recall of the
rows' gold passages over both hops (what the race scored on training rows), the hops that
retrieved a gold passage, and the gate's paired test of the pick against the start on
those rows. The answer step does not run: this measures retrieval, not F1 (`--f1` also
runs the whole workflow, start and pick, and compares the metric).

The model is `local/default` (the embedded SmolLM2-135M) unless `--model` says otherwise;
the call cache is `<run dir>/../cache` (the bench run's), so a repeated row costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", required=True, help="the multihop run folder (checkpoint.msgpack, history.jsonl)")
    ap.add_argument("--rows", type=int, default=30, help="first test rows (default 30)")
    ap.add_argument("--param", default="query_shots")
    ap.add_argument("--val-rows", type=int, default=6, help="validation rows the run gated on (bench/examples.py: 6)")
    ap.add_argument("--model", default="local/default")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--f1", action="store_true",
                    help="also run the whole workflow (notes and answer) and compare test F1 (2 more calls a row each)")
    args = ap.parse_args(argv)
    os.environ["PROMPTC_TASK_MODEL"] = args.model
    os.environ["PROMPTC_TEACHER_MODEL"] = args.model

    from promptc.compiler import compile_file
    from promptc.data import read_data
    from promptc.optim import checkpoint, credit, gate
    from promptc.optim.demos import demo_nodes, key
    from promptc.optim.history import read_jsonl
    from promptc.optim.race import Choice
    from promptc.runtime.engine import make_engine
    from promptc.runtime.interpreter import run_forward

    run_dir = Path(args.run_dir)
    program = compile_file(ROOT / "examples" / "multihop" / "multihop.pflow")
    train = read_data(ROOT / "examples" / "multihop" / "train.jsonl").rows
    test = list(read_data(ROOT / "examples" / "multihop" / "test.jsonl").rows[: args.rows])
    history = read_jsonl(run_dir / "history.jsonl")
    picks = [p for e in history for p in e["proposals"] if p["param"] == args.param and p.get("signature")]
    if not picks:
        sys.stderr.write(f"support_recall.py: no race of {args.param} picked a set in {run_dir}\n")
        return 1
    pick = picks[-1]
    state = checkpoint.load(run_dir, len(train), args.val_rows)
    if state is None:
        sys.stderr.write(f"support_recall.py: no checkpoint in {run_dir}\n")
        return 1
    by_key = {key(e.demo): e.demo for e in state.pools[args.param].entries}
    nearest, keys = json.loads(pick["signature"])
    choice = Choice(tuple(by_key[k] for k in keys), nearest)
    param = program.param(args.param)
    nodes = [n.name for n in demo_nodes(program, args.param)]
    cut, _share = credit.race_program(program, nodes, test)
    engine = make_engine(cache_dir=run_dir.parent / "cache")
    try:
        results = {}
        for label, prog in (("start", cut), ("race pick", cut.with_param(choice.of(param)))):
            traces = run_forward(prog, test, engine, concurrency=args.concurrency)
            recall = credit.race_scores(prog, nodes, traces, test, [0.0] * len(test))
            steps = credit.credited(prog)
            hit = sum(len(credit.successes(steps, t, r)) for t, r in zip(traces, test))
            ran = sum(1 for t in traces for n in steps if t.record(n).executed)
            results[label] = (recall, hit, ran)
        f1 = {}
        if args.f1:
            from promptc.runtime.evaluate import score

            for label, prog in (("start", program), ("race pick", program.with_param(choice.of(param)))):
                f1[label] = [float(x) for x in score(prog, run_forward(prog, test, engine, concurrency=args.concurrency), test)]
    finally:
        engine.close()
    verdict = gate.compare(results["start"][0], results["race pick"][0])
    print(f"run: {run_dir}; {args.param} race pick: {choice.summary()[:300]!r}")
    print(f"gate verdict in that run: {pick['verdict']} ({pick.get('reason', '')})")
    print(f"test rows: first {len(test)} of test.jsonl; model {args.model}")
    print("| | recall of the gold passages (mean over rows) | hops that retrieved a gold passage |")
    print("|---|---|---|")
    for label, (recall, hit, ran) in results.items():
        print(f"| {label} | {sum(recall) / len(recall):.3f} | {hit}/{ran} |")
    print(f"paired test (the gate's rule), race pick vs start: gain {verdict.gain:+.3f}, "
          f"{'passes' if verdict.accepted else 'does not pass'} ({verdict.reason})")
    if f1:
        v = gate.compare(f1["start"], f1["race pick"])
        print(f"test {program.train.metric} (whole workflow): start {sum(f1['start']) / len(test):.3f}, "
              f"race pick {sum(f1['race pick']) / len(test):.3f}; paired: {v.reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
