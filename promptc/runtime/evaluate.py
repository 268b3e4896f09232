"""Scoring traces against a dataset: `score(program, traces, batch, metric=None)`.

The metric is a function `(got, expected) -> float | bool`:
- by default the program's `train { metric M }` (a function the program `use`s);
- or a name: first a function bound in the program, then one of `std.metrics`
  (`exact_match`, `f1`, `contains`);
- or a Python callable.
With neither a train block nor a metric, `exact_match` is used.
The expected answer of sample i is `batch[i][program.train.answer]` ("answer" when the
program has no train block). A failed trace scores 0.0; a bool result is 1.0 / 0.0; a
metric that raises scores 0.0 for that sample (logged).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from promptc.bind import BindError, artifact_root, load_callable
from promptc.ir import Program
from promptc.runtime.records import Trace

log = logging.getLogger(__name__)

DEFAULT_METRIC = "exact_match"


class MetricError(Exception):
    """A metric name that is neither a program function nor a `std.metrics` function."""


def metric_name(program: Program, metric: str | Callable[..., Any] | None = None) -> str:
    if metric is None:
        return program.train.metric if program.train is not None else DEFAULT_METRIC
    if isinstance(metric, str):
        return metric
    return getattr(metric, "__name__", "metric")


def resolve_metric(
    program: Program, metric: str | Callable[..., Any] | None = None, search_dirs: Iterable[str | Path] = ()
) -> Callable[[Any, Any], Any]:
    if callable(metric):
        return metric
    name = metric_name(program, metric)
    dirs: list[Any] = []
    search_dirs = tuple(search_dirs)
    root = artifact_root(search_dirs)
    # an untrusted artifact's `file` field is not a place to import from (see promptc.bind)
    if program.file and not program.file.startswith("<") and (root is None or root.trusted):
        dirs.append(Path(program.file).resolve().parent)
    dirs.extend(search_dirs)
    for fn in program.functions:
        if fn.name == name:
            try:
                return load_callable(fn.module, fn.attr, dirs)
            except BindError as e:
                raise MetricError(str(e)) from None
    try:
        return load_callable("std.metrics", name)
    except BindError:
        raise MetricError(
            f"unknown metric '{name}': not a function of the program nor of std.metrics "
            "(exact_match, f1, contains)"
        ) from None


def answer_field(program: Program) -> str:
    return program.train.answer if program.train is not None else "answer"


def score(
    program: Program,
    traces: Sequence[Trace],
    batch: Sequence[dict[str, Any]],
    metric: str | Callable[..., Any] | None = None,
    *,
    search_dirs: Iterable[str | Path] = (),
) -> list[float]:
    """One score in [0, 1] (whatever the metric returns, as float) per trace."""
    fn = resolve_metric(program, metric, search_dirs)
    field = answer_field(program)
    scores: list[float] = []
    for trace, sample in zip(traces, batch, strict=True):
        if not trace.ok:
            scores.append(0.0)
            continue
        try:
            value = fn(trace.output, sample.get(field))
        except Exception as e:  # a metric that fails on one sample scores it 0
            log.warning("metric %s raised %s: %s", metric_name(program, metric), type(e).__name__, e)
            scores.append(0.0)
            continue
        s = float(bool(value)) if isinstance(value, bool) else float(value)
        scores.append(0.0 if math.isnan(s) else s)
    return scores


def summarize(scores: Sequence[float]) -> float:
    """The mean score (0.0 for no samples)."""
    return sum(scores) / len(scores) if scores else 0.0
