"""`promptc optimize FILE.pflow --train T.jsonl --val V.jsonl [options]`: train the prompts.

Runs `promptc.optim.trainer.Trainer` with a live display (step, validation score, best,
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
import logging
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.pflow", help="the workflow source")
    parser.add_argument("--train", required=True, metavar="T.jsonl", help="training samples")
    parser.add_argument("--val", required=True, metavar="V.jsonl", help="validation samples (the acceptance gate)")
    parser.add_argument("--test", metavar="X.jsonl",
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
    from promptc.cli.run import add_timeout_argument

    add_timeout_argument(parser)


def _error(message: str) -> int:
    sys.stderr.write(f"promptc optimize: error: {message}\n")
    return 1


def _usage(message: str) -> int:
    sys.stderr.write(f"promptc optimize: error: {message}\n")
    return 2


def main(args: argparse.Namespace) -> int:
    import logging

    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from promptc.errors import CompileError

    from promptc.cli.run import CliError, parse_timeouts

    for name in ("steps", "batch_size", "proposals", "concurrency"):
        if getattr(args, name) < 1:
            return _usage(f"--{name.replace('_', '-')} must be at least 1")
    try:
        timeouts = parse_timeouts(args.timeout)
    except CliError as e:
        return _usage(str(e))
    path = Path(args.file)
    if not path.is_file():
        return _error(f"no such file: '{args.file}'")
    try:
        from promptc.compiler import compile_file

        program = compile_file(path)
    except CompileError as e:
        sys.stderr.write(e.render() + "\n")
        return 1
    from promptc.runtime.data import DataError, read_jsonl

    try:
        train = read_jsonl(args.train)
        val = read_jsonl(args.val)
        test = read_jsonl(args.test) if args.test else None
    except DataError as e:
        return _error(str(e))
    if not train or not val:
        return _error("the train and validation sets must not be empty")

    from promptc.optim.trainer import Trainer
    from promptc.runtime.engine import make_engine

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir or f"runs/{program.workflow.name}")
    engine = make_engine(cache_dir=args.cache_dir, no_cache=args.no_cache, **timeouts)
    try:
        engine.use_models(program)  # where backward and optimizer calls go
    except ValueError as e:
        engine.close()
        return _error(str(e))
    console = Console(stderr=True)
    state: dict = {}

    def view() -> Table:
        t = Table(title=f"promptc optimize {path.name}", show_header=True, header_style="bold")
        for col in ("step", "phase", "val (start)", "best", "requests", "new calls", "tokens"):
            t.add_column(col, justify="right")
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        t.add_row(
            f"{state.get('step', 0)}/{args.steps}", str(state.get("phase", "")) + (f" {state['param']}" if state.get("param") else ""),
            fmt(state.get("start")), fmt(state.get("best")), str(state.get("requests", 0)),
            str(state.get("new_calls", 0)), str(state.get("tokens", 0)),
        )
        return t

    try:
        try:
            with Live(view(), console=console, refresh_per_second=4, transient=False) as live:
                def progress(event: dict) -> None:
                    state.update(event)
                    live.update(view())

                trainer = Trainer(
                    program, train, val, engine,
                    steps=args.steps, batch_size=args.batch_size, proposals=args.proposals,
                    threshold=args.grad_threshold, max_calls=args.max_calls, max_tokens=args.max_tokens,
                    max_cost=args.max_cost, run_dir=run_dir, seed=args.seed, test=test, resume=args.resume,
                    concurrency=args.concurrency, out=args.out, progress=progress,
                )
                result = trainer.fit()
        finally:
            if not console.is_terminal:
                console.line()  # rich ends its last frame with a newline on a terminal only
    except ValueError as e:
        return _error(str(e))
    except Exception as e:  # a failure of the run itself: one line, not a traceback
        return _error(f"training failed: {type(e).__name__}: {e}")
    finally:
        try:
            engine.close()
        except Exception as e:  # the run's outputs are written; closing the engine is best effort
            logging.getLogger(__name__).debug("closing the engine failed: %s", e)

    req = int(sum(c.get("requests", 0) for c in result.accounting.values()))
    new = result.new_calls
    tok = int(sum(c.get("prompt_tokens", 0) + c.get("completion_tokens", 0) for c in result.accounting.values()))
    out = sys.stdout
    out.write(f"{result.stopped}: validation {result.start_val:.3f} -> {result.best_val:.3f}")
    if result.test_best is not None:
        out.write(f", test {result.test_start:.3f} -> {result.test_best:.3f}")
    out.write(f"; {req} requests, {tok} tokens ({new} new calls in this run)\n")
    if result.test_accounting:
        treq = int(sum(c.get("requests", 0) for c in result.test_accounting.values()))
        out.write(f"test evaluation: {treq} requests, outside the training budget\n")
    changed = [p.name for p in result.program.params if p != result.source.param(p.name)]
    out.write(f"changed params: {', '.join(changed) or 'none'}\n")
    out.write(f"artifact: {result.artifact}\nhistory: {run_dir / 'history.jsonl'}\nreport: {run_dir / 'report.html'}\n")
    return 0
