"""`promptc run FILE (--input k=v ... | --data ROWS [--field INPUT=COLUMN]) [--out OUT.jsonl]`.

FILE is a `.pflow` source, a `MODULE.py[:NAME]` with a `@promptc.workflow`, or a `.pfc`;
ROWS any data file promptc.data reads (.jsonl, .json, .csv, .parquet, a saved dataset),
checked before any call: a row without one of the workflow's inputs is an error naming
its FILE:LINE.

One sample (`--input`): prints the workflow's output on stdout — a text or label as it
is, any other value as JSON — and exits 0; a failed sample prints its error on stderr
and exits 1. A batch (`--data`): runs every row concurrently with a progress bar and
writes one JSON line per row, in order, `{"output": ..., "error": ...}` to `--out` (or
stdout); failed samples are rows with an error, the exit code stays 0. A summary line
(samples, errors, calls, cache hits, tokens) goes to stderr.

Rows are written as they finish (in dataset order: a row waits for the rows before it),
each line flushed, so an interrupted or stopped run keeps every row it finished (Ctrl-C:
one line saying how many, exit 130). When the
engine stops asking a model that failed call after call (runtime/breaker.py), the run
ends there: one line naming the model and its last error, exit 1.

`--input` values are parsed as JSON when they parse (`--input k=3`, `--input
'ctx=[["t", ["s"]]]'`), else taken as text; a `text` input always keeps the raw string.
Values are then cast to the declared input types.

Exit codes: 0 ok, 1 a compile/load/run error (printed, never a traceback), 2 bad usage.
The helpers here (loading, engine, progress, summary) are shared with `promptc eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence


class CliError(Exception):
    """A user-facing error: printed as `promptc CMD: error: MESSAGE`, exit `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class Interrupted(CliError):
    """Ctrl-C, with what was kept: printed as `promptc CMD: interrupted; MESSAGE`, exit 130."""

    def __init__(self, message: str):
        super().__init__(message, 130)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help=FILE_HELP)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", "-i", action="append", metavar="NAME=VALUE", default=None, help="an input value (repeat for each input)")
    src.add_argument("--data", metavar="ROWS", help="run every row of a data file (" + DATA_FORMATS + ")")
    add_field_argument(parser)
    parser.add_argument("--out", "-o", metavar="OUT.jsonl", help="with --data: write the outputs here (default: stdout)")
    add_engine_arguments(parser)


FILE_HELP = "the workflow: a .pflow source, MODULE.py[:NAME] with a @promptc.workflow, or a .pfc artifact"
DATA_FORMATS = ".jsonl, .json, .csv, .parquet, a saved dataset folder"


def add_field_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", action="append", metavar="INPUT=COLUMN",
                        help="read workflow input (or answer field) INPUT from the data's COLUMN; repeatable")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=8, metavar="N", help="samples run at once (default 8)")
    parser.add_argument("--no-cache", action="store_true", help="ask the model again, ignoring the cache")
    parser.add_argument("--cache-dir", metavar="DIR", help="the call cache (default .promptc/cache)")
    add_timeout_argument(parser)
    add_ray_argument(parser)
    parser.add_argument(
        "--trust-code", action="store_true",
        help="let a .pfc import user code from anywhere (default: only files in its own folder, by relative path)",
    )


def add_ray_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray", metavar="ADDRESS", default=None,
        help="run the model calls on Ray actors: 'local' (a cluster started for this run), 'auto', or a "
        "cluster's HOST:PORT (default: $PROMPTC_RAY_ADDRESS; needs pip install 'promptc[ray]')",
    )


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", action="append", default=None, metavar="[MODEL=]SECONDS",
        help="seconds per model call attempt (default 60); MODEL=SECONDS sets it for one model string "
        "or provider prefix (e.g. openai/=30); repeatable",
    )


def parse_timeouts(values: Sequence[str] | None) -> dict[str, Any]:
    """`--timeout` values -> Engine keyword arguments (`timeout`, `timeouts`); bad ones: CliError."""
    kw: dict[str, Any] = {}
    per_model: dict[str, float] = {}
    for v in values or ():
        model, sep, raw = v.rpartition("=")
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not seconds > 0 or seconds == float("inf") or (sep and not model):
            raise CliError(f"--timeout expects SECONDS or MODEL=SECONDS with SECONDS > 0, got {v!r}", 2)
        if sep:
            per_model[model] = seconds
        else:
            kw["timeout"] = seconds
    if per_model:
        kw["timeouts"] = per_model
    return kw


def main(args: argparse.Namespace) -> int:
    return guarded("run", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1", 2)
    fields = parse_field_options(args.field)
    program, search_dirs = load_program(args.file, trust_code=args.trust_code)
    if args.input is not None:
        if fields:
            raise CliError("--field maps the columns of --data; with --input, name the inputs themselves", 2)
        inputs = parse_inputs(program, args.input)
        engine = make_cli_engine(args)
        (trace,) = run_batch(program, [inputs], engine, args.concurrency, search_dirs, show_progress=False)
        if not trace.ok:
            err.print(f"[red]error:[/red] {escape(trace.error)}")
            _print_raw_hint(err, trace)
            return 1
        from promptc.runtime.render import format_value

        sys.stdout.write(format_value(trace.output) + "\n")
        return 0

    batch = read_data(args.data, fields=fields, program=program, answer=False)
    engine = make_cli_engine(args)
    with RowWriter(args.out) as out:
        try:
            traces = run_batch(
                program, batch, engine, args.concurrency, search_dirs,
                on_trace=lambda i, t: out.add(i, {"output": t.output, "error": t.error}),
            )
        except KeyboardInterrupt:
            raise Interrupted(out.kept()) from None
    errors = sum(1 for t in traces if not t.ok)
    line = f"n={len(traces)} · errors {errors} · {calls_summary(engine)}"
    if args.out:
        line += f" · wrote {args.out}"
    err.print(escape(line))
    return 0


# -- shared with `promptc eval` ------------------------------------------------------
def guarded(command: str, body: Any) -> int:
    """Run a subcommand body: user errors print one line, never a traceback; the library's
    warnings (a cache that cannot be written, ...) print as `promptc CMD: warning: ...`."""
    import logging

    from promptc.runtime.failures import scrub

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"promptc {command}: warning: %(message)s"))
    logger = logging.getLogger("promptc")
    # warnings only, and only where the CLI's own console handler (cli/logs.py) would not
    # print them: it shows errors by default, everything from -v on
    shown = [h.level for h in logger.handlers if h.get_name() == "promptc-console"]
    handler.addFilter(lambda r: r.levelno < logging.ERROR and not any(level <= r.levelno for level in shown))
    logger.addHandler(handler)
    try:
        return int(body() or 0)
    except Interrupted as e:
        sys.stderr.write(f"promptc {command}: interrupted; {scrub(str(e))}\n")
        return 130
    except CliError as e:
        sys.stderr.write(f"promptc {command}: error: {scrub(str(e))}\n")
        return e.code
    except KeyboardInterrupt:
        sys.stderr.write(f"promptc {command}: interrupted\n")
        return 130
    except Exception as e:  # a bug: one line, with what to report
        sys.stderr.write(f"promptc {command}: internal error ({type(e).__name__}): {scrub(str(e))}; please report it\n")
        return 1
    finally:
        logger.removeHandler(handler)
        while _ENGINES:  # calls still in flight stop now: their threads and connections free
            _ENGINES.pop().close()


def load_program(file: str, trust_code: bool = False) -> tuple[Any, tuple[Any, ...]]:
    """The Program of FILE (a `.pflow` compiled, a `MODULE.py[:NAME]` decorated workflow,
    a `.pfc` loaded) and the dirs its Python functions are looked up in (api.targets).

    A `.pfc`'s folder is given as an `ArtifactRoot`: the runtime then imports user code
    under the trust rule of `promptc.bind` (unless `trust_code`).
    """
    from promptc.api.targets import TargetError, python_file, target
    from promptc.artifact import ArtifactError
    from promptc.bind import BindError
    from promptc.errors import CompileError

    path = python_file(file) or Path(file)
    if not path.exists():
        raise CliError(f"no such file: '{path}'")
    if not path.is_file():
        raise CliError(f"not a file: '{path}'")
    try:
        goal = target(file, trust_code=trust_code)
    except CompileError as e:
        sys.stderr.write(e.render() + "\n")
        raise CliError("compilation failed") from None
    except (TargetError, BindError, ArtifactError) as e:
        raise CliError(str(e)) from None
    return goal.program, goal.search_dirs


def parse_inputs(program: Any, pairs: Sequence[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs -> inputs cast to the workflow's declared input types."""
    from promptc.runtime.parse import coerce

    declared = dict(program.workflow.inputs)
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--input expects NAME=VALUE, got '{pair}'", 2)
        if name not in declared:
            raise CliError(f"unknown input '{name}' (inputs: {', '.join(declared) or 'none'})", 2)
        t = declared[name]
        if t.kind in ("text", "enum"):
            value: Any = raw
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        value, error = coerce(value, t)
        if error:
            raise CliError(f"input '{name}': {error}", 2)
        inputs[name] = value
    missing = [n for n in declared if n not in inputs]
    if missing:
        raise CliError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)} (give --input NAME=VALUE)", 2)
    return inputs


def parse_field_options(values: Sequence[str] | None) -> dict[str, str]:
    """`--field INPUT=COLUMN` values as {INPUT: COLUMN}; a malformed one is bad usage."""
    from promptc.data import DataError, parse_fields

    try:
        return parse_fields(values or ())
    except DataError as e:
        raise CliError(str(e), 2) from None


def read_data(
    path: str, *, limit: int | None = None, fields: dict[str, str] | None = None, program: Any = None,
    answer: bool = True,
) -> Any:
    """The rows of a data file (promptc.data), checked against `program`'s inputs (and
    its answer field with `answer`) before any call; any problem is a CliError."""
    from promptc.data import DataError, check_data, read_data as read_rows

    try:
        rows = read_rows(path, fields=fields, limit=limit)
        if program is not None:
            check_data(program, rows, answer=answer)
    except DataError as e:
        raise CliError(str(e)) from None
    if not rows.rows:
        raise CliError(f"{path}: no samples")
    return rows


def make_cli_engine(args: argparse.Namespace) -> Any:
    from promptc.runtime.cache import CacheError
    from promptc.runtime.engine import make_engine
    from promptc.runtime.executor import ExecutorUnavailable

    kw: dict[str, Any] = {"no_cache": bool(args.no_cache), **parse_timeouts(args.timeout)}
    if args.cache_dir:
        kw["cache_dir"] = args.cache_dir
    try:
        engine = make_engine(ray=getattr(args, "ray", None), **kw)
    except (CacheError, ExecutorUnavailable) as e:
        raise CliError(str(e)) from None
    _ENGINES.append(engine)  # closed when the command ends (`guarded`)
    return engine


_ENGINES: list[Any] = []


def run_batch(
    program: Any,
    batch: Any,
    engine: Any,
    concurrency: int,
    search_dirs: Sequence[Path],
    *,
    show_progress: bool = True,
    label: str = "running",
    on_trace: Any = None,
) -> list[Any]:
    """Run the forward program on a batch with a progress bar on stderr; `on_trace(index,
    trace)` as each row finishes. The engine's circuit breaker ends the batch (the rows
    still running are dropped) with its one line as a CliError."""
    from promptc.bind import BindError
    from promptc.runtime.breaker import ModelStopped, stop_when_tripped
    from promptc.runtime.interpreter import ProgramError, forward
    from promptc.runtime.sync import run_sync

    rows = list(batch)
    try:
        with progress_bar(label, len(rows), show=show_progress) as progress:
            work = forward(
                program, rows, engine, concurrency=concurrency, search_dirs=search_dirs,
                progress=progress, on_trace=on_trace,
            )  # fmt: skip
            return run_sync(stop_when_tripped(engine, work))
    except (ProgramError, BindError, ModelStopped) as e:
        raise CliError(str(e)) from None


@contextmanager
def progress_bar(label: str, total: int, *, show: bool = True, eta: bool = False) -> Iterator[Any]:
    """A transient rich progress bar on stderr (only on a terminal); yields the
    `progress(done, total)` callback to give the run (None when not shown)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not show or not console.is_terminal:
        yield None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if eta:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, _total: bar.update(task, completed=done)


class RowWriter:
    """JSON Lines to a file (or stdout), one row at a time in index order, each flushed.

    A row that holds text JSON cannot carry as UTF-8 (a lone surrogate from the dataset)
    is written with \\u escapes instead of failing the file."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._next = 0  # rows written so far
        self._waiting: dict[int, Any] = {}
        self._f: Any = None

    def __enter__(self) -> RowWriter:
        if self.path is None:
            self._f = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
        else:
            target = Path(self.path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(target, "wb")
            except OSError as e:
                raise CliError(f"cannot write {self.path}: {e.strerror or e}") from None
        return self

    def add(self, index: int, row: Any) -> None:
        self._waiting[index] = row
        while self._next in self._waiting:
            self._write(self._waiting.pop(self._next))
            self._next += 1

    def _write(self, row: Any) -> None:
        try:
            line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            line = (json.dumps(row, ensure_ascii=True, default=str) + "\n").encode("ascii")
        if self._f is None:  # a text-only stdout (tests)
            sys.stdout.write(line.decode("utf-8"))
            sys.stdout.flush()
            return
        if self.path is None:
            sys.stdout.flush()
        self._f.write(line)
        self._f.flush()

    @property
    def written(self) -> int:
        return self._next

    def kept(self) -> str:
        """What an interrupted run kept, for its last line."""
        rows = f"{self._next} finished row{'' if self._next == 1 else 's'}"
        return f"{rows} written to {self.path}" if self.path else f"{rows} written"

    def __exit__(self, *exc: Any) -> None:
        if self.path is not None and self._f is not None:
            self._f.close()


def calls_summary(engine: Any) -> str:
    """"calls 20 (cache hits 0) · tokens 1,234 in / 56 out[ · $0.0012]" from the accounting."""
    t = engine.accounting.totals()
    line = f"calls {t.calls:,} (cache hits {t.cache_hits:,}) · tokens {t.prompt_tokens:,} in / {t.completion_tokens:,} out"
    if t.cost:
        line += f" · ${t.cost:.4f}"
    if t.retries:
        line += f" · retries {t.retries:,}"
    warning = engine.accounting.usage_warning() if hasattr(engine.accounting, "usage_warning") else ""
    if warning:
        line += f" · warning: {warning}"
    return line


def escape(text: str | None) -> str:
    from rich.markup import escape as _escape

    return _escape(text or "")


def _print_raw_hint(err: Any, trace: Any) -> None:
    for rec in trace.records:
        if rec.error and rec.raw is not None:
            raw = " ".join(rec.raw.split())
            err.print(f"[dim]raw answer of {escape(rec.name)}: {escape(raw[:200])}[/dim]")
            return
