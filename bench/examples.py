"""Every example trained on the embedded model with a fixed seed and budget; writes examples/RESULTS.md.

    python bench/examples.py                       # every example (more than an hour on 2 cores)
    python bench/examples.py --quick               # smoke run: tiny sizes, writes <run dir>/RESULTS.md
    python bench/examples.py --examples trec       # a subset (still rewrites RESULTS.md with only it)
    python bench/examples.py --examples router fanout compose --steps 1 \
        --out examples/RESULTS-composition.md     # the rows of the branch, fan-out and composition examples
    python bench/examples.py --examples multihop agent --steps 0 --max-calls 160 --ceiling \
        --out examples/RESULTS-multistep.md       # the demo search alone, and the ceiling probe (gold passages)

For each example it runs the real `Trainer` (the same code as `promptc optimize`) on the
example's train split, with the first `val-limit` validation rows as the acceptance gate
and the first `test-limit` test rows evaluated once before and once after training, and
records: start vs optimized validation and test scores, model requests and new calls per
phase, prompt + completion tokens, wall time, and which params changed.

The model is `--model` (default `local/default`, the embedded SmolLM2-135M-Instruct); it
is given to the examples through PROMPTC_TASK_MODEL and PROMPTC_TEACHER_MODEL, so it is
also the backward engine, the optimizer and the demo teacher. The call cache is a fresh
folder inside the run folder (unless `--cache-dir` says otherwise), so the counts are real
calls to the model, not cache hits; the report says which cache was used.

Nothing in RESULTS.md is typed by hand: every number comes from this script's run.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from attrs import evolve

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (workflow, data folder, val rows, test rows). Multi-hop and the agent make 5 model
# calls per sample with long prompts, so they get fewer rows than the one-call examples.
EXAMPLES: dict[str, tuple[str, str, int, int]] = {
    "trec": ("examples/trec/trec.pflow", "examples/trec", 20, 30),
    "object_counting": ("examples/object_counting/object_counting.pflow", "examples/object_counting", 20, 30),
    "multihop": ("examples/multihop/multihop.pflow", "examples/multihop", 6, 6),
    "agent": ("examples/agent/react.pflow", "examples/multihop", 6, 6),
    "router": ("examples/router/router.pflow", "examples/router", 10, 10),
    "fanout": ("examples/fanout/fanout.pflow", "examples/multihop", 4, 4),
    "compose": ("examples/compose/compose.pflow", "examples/multihop", 4, 4),
}
# Metrics reported besides the training metric (issue: HotpotQA trains on F1, reports EM).
REPORTED: dict[str, tuple[str, ...]] = {
    "multihop": ("exact_match",), "agent": ("exact_match",), "fanout": ("exact_match",), "compose": ("exact_match",),
}
# The ceiling probe (--ceiling): the HotpotQA examples' answer step on the test rows with
# the two gold passages as its notes (examples/multihop/oracle.pflow). Multi-hop's trained
# answer params are put on it for the "optimized" column; the agent has none (both columns
# are the untrained answer step).
CEILING = {"multihop": ("answer_instruction", "answer_shots"), "agent": ()}
ORACLE = "examples/multihop/oracle.pflow"
QUICK = dict(steps=1, batch_size=2, proposals=1, val_limit=3, test_limit=3)
PHASES = ("forward", "backward", "propose", "validate", "demos")

TASKS = {
    "trec": "TREC-6 question classification (6 labels), metric exact match",
    "object_counting": "BIG-Bench Hard object counting, metric exact match on the number",
    "multihop": "HotpotQA multi-hop QA, 2 hops of query -> BM25 (k=1) -> notes, metric token F1",
    "agent": "ReAct agent (loop max 5, search/lookup/finish) on HotpotQA, metric token F1",
    "router": "HotpotQA bridge vs comparison questions: classify, then `if`/`else` to one of two answering llms, metric token F1",
    "fanout": "HotpotQA: BM25 top 3, `for passage in found max 3` summaries, then answer, metric token F1",
    "compose": "HotpotQA: `use \"retrieve.pflow\" { multihop_retrieve }` (2 hops) inlined, then answer, metric token F1",
}


def read_rows(path: Path) -> list[dict]:
    from promptc.data import read_data

    return list(read_data(str(path)))


def baselines(name: str, val: list[dict], test: list[dict], answer: str) -> dict[str, float]:
    """Chance-level references computed from the data (nothing typed in)."""
    out: dict[str, float] = {}
    if name == "trec":
        out["uniform guess (1/6)"] = 1 / 6
    if name in ("trec", "object_counting"):
        for split, rows in (("val", val), ("test", test)):
            counts = collections.Counter(str(r.get(answer)) for r in rows)
            label, n = counts.most_common(1)[0]
            out[f"always '{label}' on {split}"] = n / len(rows)
    return out


def run_example(name: str, args, run_dir: Path, cache_dir: Path) -> dict:
    from promptc.compiler import compile_file
    from promptc.optim.trainer import Trainer
    from promptc.runtime.engine import make_engine

    workflow, folder, val_n, test_n = EXAMPLES[name]
    val_n = args.val_limit or val_n
    test_n = args.test_limit or test_n
    program = compile_file(ROOT / workflow)
    train = read_rows(ROOT / folder / "train.jsonl")
    val = read_rows(ROOT / folder / "val.jsonl")[:val_n]
    test = read_rows(ROOT / folder / "test.jsonl")[:test_n]
    engine = make_engine(cache_dir=cache_dir)
    t0 = time.monotonic()
    try:
        result = Trainer(
            program, train, val, engine,
            steps=args.steps, batch_size=args.batch_size, proposals=args.proposals,
            run_dir=run_dir / name, seed=args.seed, test=test, concurrency=args.concurrency,
            max_calls=args.max_calls,
        ).fit()
        seconds = time.monotonic() - t0
        reported = {m: reported_metric(m, result, test, engine) for m in REPORTED.get(name, ())}
        supports = support_rates(result, test, engine, args) if program.train.supports else None
        ceiling = ceiling_probe(name, result, test, engine, args) if args.ceiling and name in CEILING else None
        ceiling_demos = ceiling_with_demos(train, test, engine, args) if ceiling is not None else None
    finally:
        try:
            engine.close()
        except Exception:
            pass
    acc = result.accounting
    changed = [p.name for p in result.program.params if p != result.source.param(p.name)]
    return {
        "name": name,
        "workflow": workflow,
        "metric": program.train.metric,
        "answer": program.train.answer,
        "train_rows": len(train),
        "val_rows": len(val),
        "test_rows": len(test),
        "start_val": result.start_val,
        "best_val": result.best_val,
        "test_start": result.test_start,
        "test_best": result.test_best,
        "steps_done": result.steps_done,
        "stopped": result.stopped,
        "changed": changed,
        "accepted": [a for h in result.history for a in h.get("accepted", [])],
        "phases": {p: acc.get(p, {}) for p in PHASES if acc.get(p, {}).get("requests")},
        "requests": int(sum(c.get("requests", 0) for c in acc.values())),
        "new_calls": int(sum(c.get("new_calls", 0) for c in acc.values())),
        "prompt_tokens": int(sum(c.get("prompt_tokens", 0) for c in acc.values())),
        "completion_tokens": int(sum(c.get("completion_tokens", 0) for c in acc.values())),
        "errors": int(sum(c.get("errors", 0) for c in acc.values())),
        "seconds": seconds,
        "reported": reported,
        "ceiling": ceiling,
        "ceiling_demos": ceiling_demos,
        "supports": supports,
        "demo_searches": demo_searches(result, run_dir / name, len(train), len(val)),
        "baselines": baselines(name, val, test, program.train.answer),
        "run_dir": str(run_dir / name),
    }


def reported_metric(metric: str, result, test: list[dict], engine) -> tuple[float | None, float | None]:
    """Test score under another metric, start vs optimized; the answers come from the cache
    the trainer's own test evaluation filled, so this makes no new model calls."""
    from promptc.runtime.evaluate import score, summarize
    from promptc.runtime.interpreter import run_forward

    def one(program):
        traces = run_forward(program, test, engine)
        return summarize(score(program, traces, test, metric=metric))

    return one(result.source), one(result.program)


def support_rates(result, test: list[dict], engine, args) -> dict:
    """On the test rows, start vs optimized: the share of the calls of steps that
    `train { supports ... }` credits whose value hit the row's field (a hop that retrieved a
    gold passage). The traces come from the cache the test evaluation filled: no new call."""
    from promptc.optim.credit import credited, successes
    from promptc.runtime.interpreter import run_forward

    spec = result.source.train
    what = "; ".join(f"{s.value} in {s.field}" for s in spec.supports)

    def one(program) -> tuple[int, int]:
        credit = credited(program)
        traces = run_forward(program, test, engine, concurrency=args.concurrency)
        ran = hit = 0
        for t, row in zip(traces, test):
            steps = [n for n in credit if n in {r.name for r in t.records if r.executed}]
            won = successes({n: credit[n] for n in steps}, t, row)
            ran, hit = ran + len(steps), hit + len(won)
        return hit, ran

    return {"what": what, "start": one(result.source), "optimized": one(result.program)}


def demo_searches(result, run_dir: Path, train_rows: int, val_rows: int) -> list[dict]:
    """Each demo search of the run: its param, the pool it drew from by origin (from the
    final checkpoint), the race's final standing and how it was decided, and the verdict."""
    from promptc.optim import checkpoint

    state = checkpoint.load(run_dir, train_rows, val_rows)
    pools = state.pools if state is not None else {}
    out = []
    for h in result.history:
        for p in h.get("proposals", []):
            if p.get("kind") != "demos":
                continue
            origins = collections.Counter(e.origin for e in pools[p["param"]].entries) if p["param"] in pools else {}
            race = p.get("race") or {}
            out.append({
                "round": h["step"], "param": p["param"], "pool": dict(sorted(origins.items())),
                "standing": race.get("standing", [])[:2], "decided_by": race.get("decided_by"),
                "verdict": p["verdict"], "reason": p.get("reason", ""),
            })
    return out


def gold_notes(row: dict) -> str:
    """The row's supporting paragraphs, as `passages` renders them, one per line."""
    from promptc.stdlib.retrieval import passages

    docs = dict(zip((t for t, _ in row["context"]), passages(row["context"])))
    return "\n".join(docs[t] for t in row["supporting_titles"] if t in docs)


def ceiling_probe(name: str, result, test: list[dict], engine, args) -> tuple[float, float]:
    """Mean test F1 of the answer step given the gold passages (`ORACLE`): with the source's
    answer params, and with the trained program's (those in CEILING[name])."""
    from promptc.compiler import compile_file
    from promptc.runtime.evaluate import score, summarize
    from promptc.runtime.interpreter import run_forward

    oracle = compile_file(ROOT / ORACLE)
    rows = [{"question": r["question"], "notes": gold_notes(r), "answer": r["answer"]} for r in test]

    def one(program) -> float:
        return summarize(score(program, run_forward(program, rows, engine, concurrency=args.concurrency), rows))

    start = one(oracle)
    trained = oracle
    for p in CEILING[name]:
        trained = trained.with_param(evolve(result.program.param(p), trainable=False))
    return start, (start if trained == oracle else one(trained))


def ceiling_with_demos(train: list[dict], test: list[dict], engine, args, n: int = 2) -> float:
    """Mean test F1 of the answer step given the gold passages and `n` labeled demos: the
    first `n` training rows, each with its own gold passages as notes and its gold answer
    (what demos could add at the ceiling)."""
    from promptc.compiler import compile_file
    from promptc.ir import Demo
    from promptc.runtime.evaluate import score, summarize
    from promptc.runtime.interpreter import run_forward

    oracle = compile_file(ROOT / ORACLE)
    demos = tuple(Demo(inputs=(("question", r["question"]), ("notes", gold_notes(r))), output=r["answer"]) for r in train[:n])
    program = oracle.with_param(evolve(oracle.param("answer_shots"), demos=demos))
    rows = [{"question": r["question"], "notes": gold_notes(r), "answer": r["answer"]} for r in test]
    return summarize(score(program, run_forward(program, rows, engine, concurrency=args.concurrency), rows))


def demo_table(searches: list[dict]) -> list[str]:
    """The demo searches of one example as a table (empty when none ran)."""
    if not searches:
        return []
    lines = [
        "| round | demos param | pool (final, by origin) | race: the last two (mean on rows) | decided by | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for d in searches:
        pool = ", ".join(f"{n} {o}" for o, n in d["pool"].items()) or "empty"
        final = "; ".join(f"{w} {m:.3f} on {n}" for w, m, n in d["standing"]) or "no race"
        verdict = d["verdict"] + (f": {d['reason']}" if d["reason"] else "")
        lines.append(f"| {d['round']} | {d['param']} | {pool} | {final} | {d['decided_by'] or '-'} | {verdict} |")
    return lines + [""]


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def near_chance(r: dict) -> str:
    """A plain sentence about how far the scores are from chance (computed, not typed)."""
    scores = [s for s in (r["best_val"], r["test_best"], r["start_val"], r["test_start"]) if s is not None]
    top = max(scores) if scores else 0.0
    if r["name"] in ("trec", "object_counting"):
        chance = max(r["baselines"].values()) if r["baselines"] else 0.0
        ref = ", ".join(f"{k}: {v:.3f}" for k, v in r["baselines"].items())
        if top <= chance + 0.05:
            return f"These scores are near or below chance ({ref}): the model does not solve this task."
        return f"Chance-level references ({ref}); the scores are above them."
    reach = ""
    if r.get("ceiling"):
        best_ceiling = max([*r["ceiling"], *([r["ceiling_demos"]] if r.get("ceiling_demos") is not None else [])])
        reach = (
            f" The model's reach on these test rows, its answer step given the gold passages, is {best_ceiling:.3f}:"
            f" the optimized workflow scores {r['test_best']:.3f}, {r['test_best'] / best_ceiling:.0%} of it"
            if best_ceiling > 0 else " Even given the gold passages the answer step scores 0 on these rows"
        ) + "; the rest of the gap is in finding the passages and writing the notes, not in the answer step."
    if top < 0.1:
        return "These F1 scores are near zero: the model almost never produces the answer." + reach
    return "There is no chance level for free-text F1; the scores are low in absolute terms." + reach


def render(results: list[dict], args, meta: dict) -> str:
    lines = [
        "# Example results",
        "",
        "Generated by `bench/examples.py`; do not edit by hand (every number below comes from one run of it).",
        "",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- model: `{meta['model']}` ({meta['model_file']}) — task model, teacher, backward engine and optimizer alike",
        f"- seed: {args.seed}",
        f"- budget per example: {args.steps} step(s), batch size {args.batch_size}, {args.proposals} proposal(s) per param per step"
        + (f", at most {args.max_calls} training calls" if args.max_calls else ""),
        f"- cache: {meta['cache']}",
        f"- machine: {meta['machine']}",
        *([f"- kept from an earlier run of this script with the same settings (--keep-results): {', '.join(meta['kept'])}"]
          if meta.get("kept") else []),
        "",
        f"{meta['model_note']}",
        "",
        "Scores are means over the rows shown (validation: the first rows of `val.jsonl`, the",
        "acceptance gate; test: the first rows of `test.jsonl`, evaluated once before and once after",
        "training). \"requests\" counts every model request of training (forward, backward, propose,",
        "validate, demos); the test evaluation's requests are counted apart, outside the training",
        "budget, and are not in these tables. \"new calls\" are the requests that reached the model.",
        "",
    ]
    for r in results:
        lines += [
            f"## {r['name']}",
            "",
            f"{TASKS[r['name']]}. Workflow `{r['workflow']}`; train {r['train_rows']} rows,"
            f" validation {r['val_rows']}, test {r['test_rows']}. Run: {r['stopped']}"
            + (f", {r['date']}." if r.get("date") else "."),
            "",
            "| | start | optimized |",
            "|---|---|---|",
            f"| validation {r['metric']} (n={r['val_rows']}) | {fmt(r['start_val'])} | {fmt(r['best_val'])} |",
            f"| test {r['metric']} (n={r['test_rows']}) | {fmt(r['test_start'])} | {fmt(r['test_best'])} |",
            *(f"| test {m} (n={r['test_rows']}, reported) | {fmt(a)} | {fmt(b)} |" for m, (a, b) in r.get("reported", {}).items()),
            *([f"| ceiling: test {r['metric']} of the answer step given the gold passages (n={r['test_rows']}) |"
               f" {fmt(r['ceiling'][0])} | {fmt(r['ceiling'][1])} |"] if r.get("ceiling") else []),
            *([f"| ceiling with 2 labeled demos (training rows' gold passages and answers; n={r['test_rows']}) |"
               f" {fmt(r['ceiling_demos'])} | {fmt(r['ceiling_demos'])} |"] if r.get("ceiling_demos") is not None else []),
            *([f"| test: credited steps whose value hit (`supports {r['supports']['what']}`; calls hit / ran) |"
               f" {r['supports']['start'][0]}/{r['supports']['start'][1]} | {r['supports']['optimized'][0]}/{r['supports']['optimized'][1]} |"]
              if r.get("supports") else []),
            "",
            *demo_table(r.get("demo_searches") or []),
            "| phase | requests | new calls | prompt tokens | completion tokens | errors |",
            "|---|---|---|---|---|---|",
        ]
        for p, c in r["phases"].items():
            lines.append(
                f"| {p} | {int(c.get('requests', 0))} | {int(c.get('new_calls', 0))} | {int(c.get('prompt_tokens', 0))}"
                f" | {int(c.get('completion_tokens', 0))} | {int(c.get('errors', 0))} |"
            )
        lines += [
            f"| **total** | {r['requests']} | {r['new_calls']} | {r['prompt_tokens']} | {r['completion_tokens']} | {r['errors']} |",
            "",
            f"Wall time: {r['seconds']:.0f} s. Params changed: {', '.join(r['changed']) or 'none'}.",
            "",
            near_chance(r),
            "",
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    ap.add_argument("--model", default="local/default", help="model of every role (default local/default)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--proposals", type=int, default=1)
    ap.add_argument("--val-limit", type=int, default=None, help="validation rows (default: per example, see EXAMPLES)")
    ap.add_argument("--test-limit", type=int, default=None, help="test rows (default: per example)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-calls", type=int, default=None, help="training call budget per example (default: none)")
    ap.add_argument("--ceiling", action="store_true",
                    help="HotpotQA examples: also score the answer step given the gold passages (examples/multihop/oracle.pflow)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--run-dir", default=None, help="run folder (default runs/bench-examples[-quick])")
    ap.add_argument("--cache-dir", default=None, help="call cache (default: a fresh <run dir>/cache)")
    ap.add_argument("--out", default=None, help="report (default examples/RESULTS.md; <run dir>/RESULTS.md with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 step, batch 2, 3 val and 3 test rows")
    ap.add_argument("--keep-results", action="store_true",
                    help="keep the other examples' results from --keep-from (each keeps its own run date)")
    ap.add_argument("--keep-from", default=None, help="results.json to keep from (default <run dir>/results.json)")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)

    import logging
    import shutil

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir or ("runs/bench-examples-quick" if args.quick else "runs/bench-examples"))
    if args.cache_dir:
        cache_dir, cache_note = Path(args.cache_dir), f"`{args.cache_dir}` (given with --cache-dir; may hold earlier answers)"
    else:
        cache_dir = run_dir / "cache"
        shutil.rmtree(cache_dir, ignore_errors=True)
        cache_note = "a fresh, empty cache folder inside the run folder: every count is a real model call"
    out = Path(args.out) if args.out else (run_dir / "RESULTS.md" if args.quick else ROOT / "examples" / "RESULTS.md")
    os.environ["PROMPTC_TASK_MODEL"] = args.model
    os.environ["PROMPTC_TEACHER_MODEL"] = args.model

    model_file = args.model
    if args.model.startswith("local/"):
        from promptc.runtime import local

        reason = local.available(args.model.split("/", 1)[1])
        if reason:
            sys.stderr.write(f"bench/examples.py: the embedded model cannot run here: {reason}\n")
            return 1
        model_file = Path(local.describe(args.model.split("/", 1)[1])).name
    note = (
        "SmolLM2-135M-Instruct is a very small model (135 million parameters) running on the CPU;"
        " it is also its own backward engine and optimizer here, so expect low scores and small,"
        " noisy changes. These runs show that the whole pipeline works offline and what it costs;"
        " they are not a measure of what the method does with a capable model."
        if "smollm2-135m" in model_file.lower() or args.model == "local/default"
        else f"Model under test: {args.model}."
    )
    meta = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["bench/examples.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model,
        "model_file": model_file,
        "cache": cache_note,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        "model_note": note,
    }
    keep_from = Path(args.keep_from) if args.keep_from else run_dir / "results.json"
    results = []

    def ordered() -> list[dict]:
        """This run's results, plus (--keep-results) the others from keep_from, read now."""
        kept: dict[str, dict] = {}
        if args.keep_results and keep_from.exists():
            kept = {r["name"]: r for r in json.loads(keep_from.read_text(encoding="utf-8"))
                    if r["name"] not in args.examples}
        meta["kept"] = sorted(kept)
        by_name = {**kept, **{r["name"]: r for r in results}}
        return [by_name[n] for n in EXAMPLES if n in by_name]

    for name in args.examples:
        sys.stderr.write(f"[bench] {name} ...\n")
        r = run_example(name, args, run_dir, cache_dir)
        r["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        sys.stderr.write(
            f"[bench] {name}: val {fmt(r['start_val'])} -> {fmt(r['best_val'])}, test {fmt(r['test_start'])} ->"
            f" {fmt(r['test_best'])}, {r['requests']} requests, {r['seconds']:.0f} s\n"
        )
        results.append(r)
        run_dir.mkdir(parents=True, exist_ok=True)
        rows = ordered()
        (run_dir / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(rows, args, meta) + "\n", encoding="utf-8")  # rewritten after each example
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
