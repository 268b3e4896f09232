"""`promptc.evaluate`: score a workflow on labeled rows, as `promptc eval` does.

    ev = promptc.evaluate("runs/trec/trec.pfc", "examples/trec/test.jsonl")
    ev.score, ev.n, ev.errors       # mean score, rows, rows that failed
    ev.rows[0].output, ev.rows[0].expected, ev.rows[0].score, ev.rows[0].error

The metric is `metric` (a name the program `use`s or of std.metrics, or a callable
`(output, expected) -> float | bool | {"score", "feedback"}`), else the program's
`train { metric M }`, else exact_match. A row whose run failed scores 0 and keeps its error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from attrs import asdict, frozen

from promptc.api.targets import target
from promptc.api.training import new_engine
from promptc.data import as_dataset, check_data
from promptc.runtime.breaker import stop_when_tripped
from promptc.runtime.evaluate import Judge, answer_field, ascore, metric_name, resolve_metric, score, summarize
from promptc.runtime.interpreter import forward
from promptc.runtime.records import Trace
from promptc.runtime.sync import run_sync


@frozen
class RowResult:
    """One evaluated row: its inputs, the output (None on error), expected answer, score."""

    inputs: Mapping[str, Any]
    output: Any
    expected: Any
    score: float
    error: str | None
    where: str = ""  # FILE:LINE (or "data row N") of the row


@frozen
class Evaluation:
    """What `evaluate` gives: the mean score, per-row results, and the calls it made."""

    metric: str
    score: float
    rows: tuple[RowResult, ...]
    accounting: Mapping[str, Any]

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.rows if r.error is not None)


async def aevaluate(
    workflow: Any,
    data: Any,
    *,
    metric: str | Callable[..., Any] | None = None,
    concurrency: int = 8,
    limit: int | None = None,
    engine: Any = None,
    cache_dir: str | Path | None = None,
    no_cache: bool = False,
    timeouts: Mapping[str, Any] | None = None,
    fields: Mapping[str, str] | None = None,
    trust_code: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_row: Callable[[int, RowResult], None] | None = None,
    ray: Any = None,
) -> Evaluation:
    """`evaluate` for code already inside an event loop."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    goal = target(workflow, trust_code=trust_code)
    program = goal.program
    rows = as_dataset(data, "data", fields=fields).head(limit)
    check_data(program, rows)
    fn = resolve_metric(program, metric, goal.search_dirs)
    judge = isinstance(fn, Judge)  # an llm judge scores once every row has run
    batch = list(rows.rows)
    field = answer_field(program)
    inputs = [name for name, _t in program.workflow.inputs]
    results: list[RowResult | None] = [None] * len(batch)

    def result(i: int, trace: Trace, s: float) -> None:
        row = batch[i]
        results[i] = RowResult(
            inputs={k: row.get(k) for k in inputs}, output=trace.output, expected=row.get(field),
            score=float(s), error=trace.error, where=rows.where[i],
        )  # fmt: skip
        if on_row is not None:
            on_row(i, results[i])

    def finished(i: int, trace: Trace) -> None:
        if not judge:
            result(i, trace, score(program, [trace], [batch[i]], fn)[0])

    own_engine = engine is None
    if own_engine:
        engine = new_engine(cache_dir, no_cache, timeouts, ray)
    try:
        engine.use_models(program)
        traces = await stop_when_tripped(engine, forward(
            program, batch, engine, concurrency=concurrency, phase="eval", search_dirs=goal.search_dirs,
            progress=progress, on_trace=finished,
        ))  # fmt: skip
        if judge:
            scores = await stop_when_tripped(engine, ascore(program, traces, batch, fn, engine=engine, phase="eval"))
            for i, (t, s) in enumerate(zip(traces, scores)):
                result(i, t, s)
        accounting = {p: asdict(c) for p, c in engine.accounting.by_phase().items()}
    finally:
        if own_engine:
            engine.close()
    done = tuple(r for r in results if r is not None)
    return Evaluation(metric_name(program, metric), summarize([r.score for r in done]), done, accounting)


def evaluate(workflow: Any, data: Any, **kw: Any) -> Evaluation:
    """Run `workflow` on every row of `data` and score each output against the row's answer
    (the field of `train { answer F }`, else "answer"). `workflow` and `data` take what
    `promptc.optimize` takes; the keywords are `aevaluate`'s: metric, concurrency, limit,
    engine, cache_dir, no_cache, timeouts, fields, trust_code, progress (`(done, total)`
    as rows finish), on_row (`(index, RowResult)` as each row is scored), ray (run the
    model calls on Ray actors: a cluster address or a `RayTarget`; ignored with `engine`).

    Raises `promptc.DataError` (before any call) when a row lacks an input or the answer,
    and `ModelStopped` when the engine stopped asking a model that failed call after call.
    """
    return run_sync(aevaluate(workflow, data, **kw))


__all__ = ["Evaluation", "RowResult", "aevaluate", "evaluate"]
