"""`promptc eval FILE --data IN.jsonl [--metric NAME] [--limit N] [--concurrency N] [--no-cache]`.

Runs the workflow on every row (or the first N) and scores each output against the row's
expected answer (the field named by the program's `train { answer F }`, else "answer")
with the metric: `--metric NAME` (a function the program `use`s, or one of std.metrics:
exact_match, f1, contains), else the program's `train { metric M }`, else exact_match.
A failed sample scores 0.

Prints the mean score and a summary line on stdout:

    exact_match 0.650 · n=20 · errors 0 · calls 20 (cache hits 0) · tokens 3,456 in / 40 out

`--out FILE.jsonl` also writes one row per sample: output, expected, score, error, as
each row finishes (in dataset order), so a stopped run keeps what it finished (with an
llm judge as the metric, the rows are written once the judge has scored them all).
A model that fails call after call ends the eval early (runtime/breaker.py): one line
naming it and its last error, exit 1.
Exit codes: 0 ok, 1 a compile/load/run error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from promptc.cli.run import (
    CliError,
    RowWriter,
    add_engine_arguments,
    calls_summary,
    escape,
    guarded,
    load_program,
    make_cli_engine,
    read_data,
    run_batch,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a workflow source (.pflow) or compiled artifact (.pfc)")
    parser.add_argument("--data", required=True, metavar="IN.jsonl", help="the dataset (JSON Lines)")
    parser.add_argument("--metric", metavar="NAME", help="the metric (default: the train block's, else exact_match)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N samples")
    parser.add_argument("--out", "-o", metavar="OUT.jsonl", help="write per-sample results here")
    add_engine_arguments(parser)


def main(args: argparse.Namespace) -> int:
    return guarded("eval", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from promptc.runtime.evaluate import (
        Judge,
        MetricError,
        answer_field,
        ascore,
        metric_name,
        resolve_metric,
        score,
        summarize,
    )

    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1", 2)
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1", 2)
    program, search_dirs = load_program(args.file, trust_code=args.trust_code)
    try:
        metric = resolve_metric(program, args.metric, search_dirs)
    except MetricError as e:
        raise CliError(str(e), 2) from None
    name = metric_name(program, args.metric)
    batch = read_data(args.data, limit=args.limit)
    field = answer_field(program)
    if not any(field in row for row in batch):
        raise CliError(f"{args.data}: no row has the expected-answer field '{field}'")
    engine = make_cli_engine(args)
    judge = isinstance(metric, Judge)  # an llm judge: its calls go to the same engine
    scores: list = [None] * len(batch)

    def row(i: int, t: object) -> dict:
        return {"output": t.output, "expected": batch[i].get(field), "score": scores[i], "error": t.error}

    with RowWriter(args.out) if args.out else _NoRows() as out:

        def finished(i: int, t: object) -> None:
            if not judge:
                scores[i] = score(program, [t], [batch[i]], metric)[0]
                out.add(i, row(i, t))

        traces = run_batch(program, batch, engine, args.concurrency, search_dirs, label="evaluating", on_trace=finished)
        if judge:
            import asyncio

            scores[:] = asyncio.run(ascore(program, traces, batch, metric, engine=engine))
            if engine.tripped is not None:  # the judge's model stopped answering
                raise CliError(engine.tripped.message())
            for i, t in enumerate(traces):
                out.add(i, row(i, t))
    mean = summarize(scores)
    errors = [t for t in traces if not t.ok]
    out = Console(highlight=False, soft_wrap=True)
    out.print(escape(f"{name} {mean:.3f} · n={len(traces)} · errors {len(errors)} · {calls_summary(engine)}"))
    if errors:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[dim]first error: {escape(errors[0].error)}[/dim]")
    sys.stdout.flush()
    return 0


class _NoRows:
    def __enter__(self) -> _NoRows:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add(self, index: int, row: object) -> None:
        pass
