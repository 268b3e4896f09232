"""Scoring traces against a dataset: `score(program, traces, batch, metric=None)`.

The metric is a function `(got, expected) -> float | bool | {"score": float, "feedback": text}`
(a metric that explains: its feedback goes into the loss that starts the backward pass),
or an `llm` of the program taking (got, expected) and returning a number or a record
`{score: float, feedback: text}`: an LLM judge, with its own fixed prompt, scored with
`ascore` (it needs an engine); a judge call that fails scores 0.0, with the failure as
feedback. The metric is found:
- by default the program's `train { metric M }` (a function the program `use`s);
- or a name: first a function bound in the program, then one of `std.metrics`
  (`exact_match`, `f1`, `contains`);
- or a Python callable.
With neither a train block nor a metric, `exact_match` is used.
The expected answer of sample i is `batch[i][program.train.answer]` ("answer" when the
program has no train block). A failed trace scores 0.0; a bool result is 1.0 / 0.0; a
metric that raises, or returns a record without a number `score`, scores 0.0 for that
sample (logged). Each score is a `Score`: a float that also carries the metric's
`feedback` text ("" when the metric gives none).
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from promptc.bind import BindError, artifact_root, bind_program, load_callable
from promptc.ir import LlmDef, Program
from promptc.runtime.records import Trace

log = logging.getLogger(__name__)

DEFAULT_METRIC = "exact_match"


class Score(float):
    """A metric's score: a float wherever a float is used, plus the metric's explanation."""

    feedback: str

    def __new__(cls, value: float, feedback: str = "") -> "Score":
        obj = super().__new__(cls, value)
        obj.feedback = feedback
        return obj

    def __repr__(self) -> str:
        return f"Score({float(self)!r}, {self.feedback!r})" if self.feedback else float.__repr__(self)


class MetricError(Exception):
    """A metric name that is neither a program function nor a `std.metrics` function."""


def metric_name(program: Program, metric: str | Callable[..., Any] | None = None) -> str:
    if metric is None:
        return program.train.metric if program.train is not None else DEFAULT_METRIC
    if isinstance(metric, str):
        return metric
    return getattr(metric, "__name__", "metric")


class Judge:
    """An `llm` of the program used as the metric: `await judge(program, engine, got, expected)`."""

    def __init__(self, llm: LlmDef):
        self.llm = llm
        self.__name__ = llm.name

    async def __call__(self, program: Program, engine: Any, got: Any, expected: Any, phase: str = "validate") -> Score:
        from promptc.runtime.parse import parse_answer
        from promptc.runtime.render import build_request

        (a, _), (b, _) = self.llm.params[:2]
        req = build_request(program, self.llm, {a: got, b: expected}, phase=phase)
        try:
            res = await engine.call(req)
        except Exception as e:  # an engine must not raise; one that does fails this score only
            return Score(0.0, f"the judge failed: {type(e).__name__}: {e}")
        if res.error is not None:
            return Score(0.0, f"the judge failed: {res.error}")
        value, err = parse_answer(res.text, self.llm.returns)
        if err:
            return Score(0.0, f"the judge's answer did not parse: {err}")
        return _as_score(value)


def judge_of(program: Program, metric: str | Callable[..., Any] | None = None) -> LlmDef | None:
    """The llm that is the metric, if the metric names one."""
    if callable(metric):
        return None
    name = metric_name(program, metric)
    return next((l for l in program.llms if l.name == name), None)


def resolve_metric(
    program: Program, metric: str | Callable[..., Any] | None = None, search_dirs: Iterable[str | Path] = ()
) -> Callable[[Any, Any], Any]:
    if callable(metric):
        return metric
    judge = judge_of(program, metric)
    if judge is not None:
        return Judge(judge)
    name = metric_name(program, metric)
    search_dirs = tuple(search_dirs)
    if any(fn.name == name for fn in program.functions):
        # the search path and trust rule of promptc.bind; an untrusted artifact binds the metric alone
        root = artifact_root(search_dirs)
        confined = root is not None and not root.trusted
        table = bind_program(program, search_dirs, only=(name,) if confined else None)
        if name in table.errors:
            raise MetricError(table.errors[name])
        return table[name]
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
    """One `Score` (a float in [0, 1], with the metric's feedback) per trace."""
    fn = resolve_metric(program, metric, search_dirs)
    if isinstance(fn, Judge):
        raise MetricError(f"the metric '{fn.__name__}' is an llm (a judge): score with `ascore(..., engine=...)`")
    field = answer_field(program)
    scores: list[float] = []
    for trace, sample in zip(traces, batch, strict=True):
        if not trace.ok:
            scores.append(Score(0.0))
            continue
        try:
            scores.append(_as_score(fn(trace.output, sample.get(field))))
        except Exception as e:  # a metric that fails on one sample scores it 0
            log.warning("metric %s raised %s: %s", metric_name(program, metric), type(e).__name__, e)
            scores.append(Score(0.0))
    return scores


async def ascore(
    program: Program,
    traces: Sequence[Trace],
    batch: Sequence[dict[str, Any]],
    metric: str | Callable[..., Any] | None = None,
    *,
    engine: Any = None,
    phase: str = "validate",
    search_dirs: Iterable[str | Path] = (),
) -> list[float]:
    """`score`, also for an llm judge (its calls go to `engine`, concurrently)."""
    fn = resolve_metric(program, metric, search_dirs)
    if not isinstance(fn, Judge):
        return score(program, traces, batch, fn, search_dirs=search_dirs)
    if engine is None:
        raise MetricError(f"the metric '{fn.__name__}' is an llm (a judge): scoring needs an engine")
    field = answer_field(program)

    async def one(trace: Trace, sample: dict[str, Any]) -> Score:
        if not trace.ok:
            return Score(0.0)
        s = await fn(program, engine, trace.output, sample.get(field), phase)
        if s.feedback.startswith("the judge"):
            log.warning("judge %s: %s", fn.__name__, s.feedback)
        return s

    return list(await asyncio.gather(*(one(t, s) for t, s in zip(traces, batch, strict=True))))


def _as_score(value: Any) -> Score:
    """A metric's result as a `Score`: a number, a bool, or `{"score": ..., "feedback": ...}`."""
    feedback = ""
    if isinstance(value, dict):
        if "score" not in value:
            raise ValueError(f"a metric record needs a 'score' field, got {sorted(value)}")
        feedback = str(value.get("feedback") or "")
        value = value["score"]
    s = float(bool(value)) if isinstance(value, bool) else float(value)
    return Score(0.0 if math.isnan(s) else s, feedback)


def summarize(scores: Sequence[float]) -> float:
    """The mean score (0.0 for no samples)."""
    return sum(scores) / len(scores) if scores else 0.0
