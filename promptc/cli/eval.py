"""`promptc eval FILE --data ROWS [--metric NAME] [--limit N] [--out OUT.jsonl] [--json]`.

Runs the workflow on every row (or the first N) and scores each output against the row's
expected answer (the field named by the program's `train { answer F }`, else "answer")
with the metric: `--metric NAME` (a function the program `use`s, or one of std.metrics:
exact_match, f1, contains), else the program's `train { metric M }`, else exact_match.
A failed sample scores 0. This is `promptc.evaluate` (api/evaluation.py) with a progress
bar (with an ETA) and a summary line on stdout:

    exact_match 0.650 · n=20 · errors 0 · calls 20 (cache hits 0) · tokens 3,456 in / 40 out

FILE is a `.pflow`, a `MODULE.py[:NAME]` or a `.pfc`; ROWS any data file promptc.data
reads, `--field INPUT=COLUMN` renaming columns. Every row must carry the workflow's
inputs and the answer field: checked before any call (exit 1 naming FILE:LINE).

`--out FILE.jsonl` also writes one row per sample: inputs, output, expected, score,
error, as each row finishes (in dataset order), so a stopped run keeps what it finished
(with an llm judge as the metric, the rows are written once the judge has scored them
all); Ctrl-C ends the run with one line saying how many rows were written, exit 130.
`--json` prints one JSON object on stdout instead of the line (the metric, score, n,
errors, calls and tokens), the human line going to stderr.

A model that fails call after call ends the eval early (runtime/breaker.py): one line
naming it and its last error, exit 1. When no row could run at all, the summary is
printed and the exit code is 1.
Exit codes: 0 ok, 1 a compile/load/run error or no row ran, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from promptc.cli.run import (
    FILE_HELP,
    CliError,
    Interrupted,
    RowWriter,
    add_engine_arguments,
    add_field_argument,
    calls_summary,
    escape,
    guarded,
    load_program,
    make_cli_engine,
    parse_field_options,
    progress_bar,
    read_data,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help=FILE_HELP)
    parser.add_argument("--data", required=True, metavar="ROWS",
                        help="the labeled rows (.jsonl, .json, .csv, .parquet, a saved dataset folder)")
    add_field_argument(parser)
    parser.add_argument("--metric", metavar="NAME", help="the metric (default: the train block's, else exact_match)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N samples")
    parser.add_argument("--out", "-o", metavar="OUT.jsonl", help="write per-sample results here")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (the line goes to stderr)")
    add_engine_arguments(parser)


def main(args: argparse.Namespace) -> int:
    return guarded("eval", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from promptc.api.evaluation import aevaluate
    from promptc.runtime.sync import run_sync
    from promptc.api.targets import Target
    from promptc.runtime.breaker import ModelStopped
    from promptc.runtime.evaluate import MetricError, resolve_metric

    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1", 2)
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1", 2)
    fields = parse_field_options(args.field)
    program, search_dirs = load_program(args.file, trust_code=args.trust_code)
    try:
        resolve_metric(program, args.metric, search_dirs)
    except MetricError as e:
        raise CliError(str(e), 2) from None
    rows = read_data(args.data, limit=args.limit, fields=fields, program=program)
    engine = make_cli_engine(args)
    with RowWriter(args.out) if args.out else _NoRows() as out:
        try:
            with progress_bar("evaluating", len(rows), eta=True) as progress:
                ev = run_sync(aevaluate(
                    Target(program, search_dirs), rows, metric=args.metric, concurrency=args.concurrency,
                    engine=engine, progress=progress, on_row=lambda i, r: out.add(i, _row(r)),
                ))  # fmt: skip
        except KeyboardInterrupt:
            raise Interrupted(out.kept()) from None
        except ModelStopped as e:
            raise CliError(str(e)) from None
    line = f"{ev.metric} {ev.score:.3f} · n={ev.n} · errors {ev.errors} · {calls_summary(engine)}"
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.json:
        err.print(escape(line))
        sys.stdout.write(json.dumps(_as_json(ev, engine, args.out)) + "\n")
    else:
        Console(highlight=False, soft_wrap=True).print(escape(line))
    first = next((r for r in ev.rows if r.error is not None), None)
    if first is not None:
        err.print(f"[dim]first error ({escape(first.where)}): {escape(first.error)}[/dim]")
    sys.stdout.flush()
    if ev.n and ev.errors == ev.n:
        raise CliError(f"no row could run ({ev.n} of {ev.n} failed)")
    return 0


def _row(r: Any) -> dict[str, Any]:
    return {"inputs": dict(r.inputs), "output": r.output, "expected": r.expected, "score": r.score, "error": r.error}


def _as_json(ev: Any, engine: Any, out: str | None) -> dict[str, Any]:
    t = engine.accounting.totals()
    return {
        "metric": ev.metric,
        "score": ev.score,
        "n": ev.n,
        "errors": ev.errors,
        "calls": t.calls,
        "cache_hits": t.cache_hits,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "cost": t.cost,
        "out": out,
    }


class _NoRows:
    def __enter__(self) -> _NoRows:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add(self, index: int, row: object) -> None:
        pass

    def kept(self) -> str:
        return "no --out file was given"
