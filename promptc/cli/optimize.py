"""`promptc optimize FILE --train T --val V [options]`: train the prompts.

FILE is a `.pflow` source or `MODULE.py[:NAME]` (a `@promptc.workflow`); the data files
are JSON Lines, JSON arrays, CSV, Parquet or saved Hugging Face datasets (`promptc.data`),
checked against the workflow's inputs and answer field before the first call. Runs
`promptc.optimize` (promptc.api.training) with a live display (step, validation score, best,
requests, new calls, tokens) and writes, in the run folder (default `runs/<workflow>`):
`checkpoint.msgpack` (after every step), `history.jsonl`, `report.html`, `summary.json`
(scores, training and test accounting, changed params, filter counts), and the
optimized artifact (`--out`, default `<run dir>/<workflow>.pfc`). `--resume` continues
from the run folder's checkpoint; with the cache, nothing already asked is paid again.

Exit codes: 0 done (also when a budget stopped the run: the reason is printed),
1 a compile error, an unreadable dataset or a failed run, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the workflow: a .pflow source, or MODULE.py[:NAME] with a @promptc.workflow")
    parser.add_argument("--train", required=True, metavar="T", help="training rows (.jsonl, .json, .csv, .parquet, a saved dataset)")
    parser.add_argument("--val", required=True, metavar="V", help="validation rows (the acceptance gate)")
    parser.add_argument("--field", action="append", metavar="INPUT=COLUMN",
                        help="read workflow input (or answer field) INPUT from the data's COLUMN (repeatable)")
    parser.add_argument("--test", metavar="X",
                        help="test samples: the start and final programs are scored on them at the end, "
                             "whatever stopped the run, outside the call budget")
    parser.add_argument("--steps", type=int, default=4,
                        help="prompt steps (default 4); demo searches come before and after accepted ones")
    parser.add_argument("--batch-size", type=int, default=8, help="minibatch size (default 8)")
    parser.add_argument("--proposals", type=int, default=2, help="proposals per param per step (default 2)")
    parser.add_argument("--grad-threshold", type=float, default=1.0,
                        help="samples scoring below this get gradients (default 1.0: anything short of full marks)")
    parser.add_argument("--max-calls", type=int, help="hard budget: model requests (cache hits included)")
    parser.add_argument("--max-tokens", type=int, help="hard budget: prompt + completion tokens")
    parser.add_argument("--max-cost", type=float, help="hard budget: cost in USD (as litellm prices it)")
    parser.add_argument("--run-dir", metavar="DIR", help="run folder (default runs/<workflow>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    parser.add_argument("--out", metavar="OUT.pfc", help="optimized artifact (default <run dir>/<workflow>.pfc)")
    parser.add_argument("--seed", type=int, default=0, help="minibatch sampling seed (default 0)")
    parser.add_argument("--concurrency", type=int, default=8, help="samples run at once (default 8)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the call cache")
    parser.add_argument("--cache-dir", default=".promptc/cache", help="call cache folder (default .promptc/cache)")
    parser.add_argument("--mlflow", nargs="?", const=True, metavar="TRACKING_URI",
                        help="log the run to MLflow (default store ./mlruns; needs pip install 'promptc[mlflow]')")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on stdout (the live display stays on stderr)")
    from promptc.cli.run import add_ray_argument, add_timeout_argument

    add_timeout_argument(parser)
    add_ray_argument(parser)


def _error(message: str) -> int:
    sys.stderr.write(f"promptc optimize: error: {message}\n")
    return 1


def _usage(message: str) -> int:
    sys.stderr.write(f"promptc optimize: error: {message}\n")
    return 2


def _table(state: dict, steps: int, shown: str) -> Any:
    """The live table: one row that follows the trainer's progress events."""
    from rich.table import Table

    t = Table(title=f"promptc optimize {shown}", show_header=True, header_style="bold")
    for col in ("step", "phase", "val (start)", "best", "requests", "new calls", "tokens"):
        t.add_column(col, justify="right")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    t.add_row(
        f"{state.get('step', 0)}/{steps}", str(state.get("phase", "")) + (f" {state['param']}" if state.get("param") else "")
        + (f" {state.get('done', 0)}/{state['rows']}" if state.get("rows") else ""),
        fmt(state.get("start")), fmt(state.get("best")),
        str(state.get("requests", 0)) + (f" ({state['budget']:.0%} of budget)" if state.get("budget") is not None else ""),
        str(state.get("new_calls", 0)), str(state.get("tokens", 0)),
    )
    return t


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from promptc.api.targets import TargetError, target
    from promptc.api.training import optimize
    from promptc.bind import BindError
    from promptc.cli.run import CliError, parse_timeouts
    from promptc.data import DataError, check_data, parse_fields, read_data
    from promptc.errors import CompileError
    from promptc.runtime.breaker import ModelStopped
    from promptc.runtime.executor import ExecutorUnavailable

    for name in ("steps", "batch_size", "proposals", "concurrency"):
        if getattr(args, name) < 1:
            return _usage(f"--{name.replace('_', '-')} must be at least 1")
    try:
        timeouts = parse_timeouts(args.timeout)
        fields = parse_fields(args.field or ())
    except (CliError, DataError) as e:
        return _usage(str(e))
    try:
        goal = target(args.file, trust_code=getattr(args, "trust_code", False))
    except CompileError as e:
        sys.stderr.write(e.render() + "\n")
        return 1
    except (TargetError, BindError) as e:
        return _error(str(e))
    program = goal.program
    try:
        train = read_data(args.train, fields=fields)
        val = read_data(args.val, fields=fields)
        test = read_data(args.test, fields=fields) if args.test else None
        for rows in (train, val, test):
            if rows is not None:
                check_data(program, rows)  # before the live display and before any call
    except DataError as e:
        return _error(str(e))

    run_dir = Path(args.run_dir or f"runs/{program.workflow.name}")
    console = Console(stderr=True)
    state: dict = {}
    shown = Path(args.file).name

    try:
        try:
            with Live(_table(state, args.steps, shown), console=console, refresh_per_second=4, transient=False) as live:
                def progress(event: dict) -> None:
                    state.update(event)
                    live.update(_table(state, args.steps, shown))

                trained = optimize(
                    goal, train, val, test=test,
                    steps=args.steps, batch_size=args.batch_size, proposals=args.proposals,
                    threshold=args.grad_threshold, max_calls=args.max_calls, max_tokens=args.max_tokens,
                    max_cost=args.max_cost, run_dir=run_dir, seed=args.seed, resume=args.resume,
                    concurrency=args.concurrency, out=args.out, cache_dir=args.cache_dir, no_cache=args.no_cache,
                    timeouts=timeouts, progress=progress, mlflow=args.mlflow, fields=fields or None, ray=args.ray,
                )  # fmt: skip
        finally:
            if not console.is_terminal:
                console.line()  # rich ends its last frame with a newline on a terminal only
    except KeyboardInterrupt:
        return _interrupted(run_dir, args.resume)
    except ModelStopped as e:
        return _error(f"{e}; {_continue(run_dir, args.resume)}")
    except (DataError, ValueError, ExecutorUnavailable) as e:
        return _error(str(e))
    except Exception as e:  # a failure of the run itself: one line, not a traceback
        return _error(f"training failed: {type(e).__name__}: {e}")
    if args.json:
        _report(trained, run_dir, sys.stderr)
        sys.stdout.write(json.dumps(_as_json(trained, run_dir)) + "\n")
    else:
        _report(trained, run_dir, sys.stdout)
    return 0


def _interrupted(run_dir: Path, resuming: bool) -> int:
    """Ctrl-C: one line naming the checkpoint and the command that continues; exit 130."""
    sys.stderr.write(f"promptc optimize: interrupted; {_continue(run_dir, resuming)}\n")
    return 130


def _continue(run_dir: Path, resuming: bool) -> str:
    """Where the run stopped and the command that continues it."""
    argv = [a for a in sys.argv[1:]]
    command = " ".join(shlex.quote(a) for a in ["promptc", *argv, *([] if resuming else ["--resume"])])
    checkpoint = run_dir / "checkpoint.msgpack"
    where = f"the last checkpoint is {checkpoint}" if checkpoint.exists() else "no round had finished"
    return f"{where}; continue with: {command}"


def _as_json(trained, run_dir: Path) -> dict:
    totals = lambda table, key: sum(row.get(key, 0) for row in table.values())  # noqa: E731
    return {
        "stopped": trained.stopped,
        "scores": dict(trained.scores),
        "requests": totals(trained.accounting, "requests"),
        "tokens": totals(trained.accounting, "prompt_tokens") + totals(trained.accounting, "completion_tokens"),
        "cost": totals(trained.accounting, "cost"),
        "new_calls": trained.new_calls,
        "test_requests": totals(trained.test_accounting, "requests"),
        "changed": list(trained.changed),
        "artifact": str(trained.artifact) if trained.artifact else None,
        "run_dir": str(run_dir),
        "history": str(run_dir / "history.jsonl"),
        "report": str(run_dir / "report.html"),
        "run": trained.run.data() if trained.run is not None else None,
    }


def _report(trained, run_dir: Path, out) -> None:
    scores = trained.scores
    req = int(sum(c.get("requests", 0) for c in trained.accounting.values()))
    tok = int(sum(c.get("prompt_tokens", 0) + c.get("completion_tokens", 0) for c in trained.accounting.values()))
    from promptc.optim.report import end_line

    out.write(f"{trained.stopped}: {end_line(scores, list(trained.history))}")
    if scores["test_best"] is not None:
        out.write(f", test {scores['test_start']:.3f} -> {scores['test_best']:.3f}")
    out.write(f"; {req} requests, {tok} tokens ({trained.new_calls} new calls in this run)\n")
    if trained.test_accounting:
        treq = int(sum(c.get("requests", 0) for c in trained.test_accounting.values()))
        out.write(f"test evaluation: {treq} requests, outside the training budget\n")
    out.write(f"changed params: {', '.join(trained.changed) or 'none'}\n")
    out.write(f"artifact: {trained.artifact}\nhistory: {run_dir / 'history.jsonl'}\nreport: {run_dir / 'report.html'}\n")
