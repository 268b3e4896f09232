"""`promptc.optimize`: train a workflow's prompts from Python, as `promptc optimize` does.

    trained = promptc.optimize(trec, train_rows, val_rows, steps=2, max_calls=300)
    trained.scores                 # {"start_val": .., "best_val": .., "test_start": .., ...}
    trained.workflow(question="Who wrote Hamlet?")
    trained.save("trec.pfc")

The same schedule, budgets, checkpoints, `resume`, run folder (history.jsonl,
summary.json, report.html) and test scoring as the command line, which calls this. The
data is checked against the workflow's inputs and answer field before the first call
(`promptc.data.check_data`), so a wrong column name costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from attrs import frozen

from promptc.api.targets import target
from promptc.api import tracking
from promptc.data import Dataset, as_dataset, check_data
from promptc.ir import Program
from promptc.optim.outputs import RunInfo, scores_of
from promptc.optim.trainer import Trainer
from promptc.runtime.breaker import stop_when_tripped
from promptc.runtime.engine import make_engine
from promptc.runtime.sync import run_sync
from promptc.runtime.workflow import Workflow


@frozen
class Trained:
    """What `optimize` gives: the trained workflow, ready to call, and what the run did.

    scores: start_val, best_val (validation means), test_start, test_best (None without
    test rows), steps, stopped. history: one entry per round, as in history.jsonl.
    run: the run's metadata (`run.data()` is summary.json's "run").
    """

    workflow: Workflow
    program: Program
    source: Program
    scores: Mapping[str, Any]
    history: tuple[Mapping[str, Any], ...]
    run_dir: Path
    artifact: Path | None
    stopped: str
    accounting: Mapping[str, Any]  # {phase: {requests, new_calls, errors, tokens, cost}}
    new_calls: int  # requests of this process that reached a model (not the cache)
    test_accounting: Mapping[str, Any]  # the test scoring's, outside the training budget
    run: RunInfo | None = None  # promptc version, model per role, seed, options, start, duration, machine

    def save(self, path: str | Path) -> Path:
        """Write the trained workflow as a `.pfc` (the run folder has one already)."""
        return self.workflow.save(path)

    @property
    def changed(self) -> tuple[str, ...]:
        """The params training changed."""
        return tuple(p.name for p in self.program.params if p != self.source.param(p.name))


async def aoptimize(
    workflow: Any,
    train: Any,
    val: Any,
    *,
    test: Any = None,
    steps: int = 4,
    batch_size: int = 8,
    proposals: int = 2,
    threshold: float = 1.0,
    max_calls: int | None = None,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    run_dir: str | Path | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    concurrency: int = 8,
    engine: Any = None,
    cache_dir: str | Path | None = None,
    no_cache: bool = False,
    timeouts: Mapping[str, Any] | None = None,
    ray: Any = None,
    fields: Mapping[str, str] | None = None,
    trust_code: bool = False,
    progress: Callable[[dict], None] | None = None,
    mlflow: str | bool | None = None,
) -> Trained:
    """`optimize` for code already inside an event loop."""
    for name, value in (("steps", steps), ("batch_size", batch_size), ("proposals", proposals)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")
    if mlflow:
        tracking.require()
    goal = target(workflow, trust_code=trust_code)
    program = goal.program
    sets = {"train": train, "val": val, **({"test": test} if test is not None else {})}
    data: dict[str, Dataset] = {}
    for name, rows in sets.items():
        data[name] = as_dataset(rows, name, fields=fields)
        check_data(program, data[name])
    options = dict(  # as given, for the run's metadata (summary.json, the .pfc, MLflow)
        steps=steps, batch_size=batch_size, proposals=proposals, threshold=threshold, max_calls=max_calls,
        max_tokens=max_tokens, max_cost=max_cost, seed=seed, concurrency=concurrency, resume=resume,
        run_dir=str(run_dir) if run_dir is not None else None, out=str(out) if out is not None else None,
        cache_dir=str(cache_dir) if cache_dir is not None else None, no_cache=no_cache,
        fields=" ".join(f"{k}={v}" for k, v in fields.items()) if fields else None,
        train_rows=len(data["train"]), val_rows=len(data["val"]), test_rows=len(data["test"]) if "test" in data else 0,
    )  # fmt: skip
    own_engine = engine is None
    if own_engine:
        engine = new_engine(cache_dir, no_cache, timeouts, ray)
    try:
        engine.use_models(program)  # where backward and optimizer calls go
        trainer = Trainer(
            program, data["train"].rows, data["val"].rows, engine,
            steps=steps, batch_size=batch_size, proposals=proposals, threshold=threshold,
            max_calls=max_calls, max_tokens=max_tokens, max_cost=max_cost,
            run_dir=Path(run_dir or f"runs/{program.workflow.name}"), seed=seed,
            test=data["test"].rows if "test" in data else None, resume=resume, concurrency=concurrency,
            out=out, search_dirs=goal.search_dirs, progress=progress, options=options,
        )  # fmt: skip
        result = await stop_when_tripped(engine, trainer.afit())
    finally:
        if own_engine:
            engine.close()
    trained = _trained(result, Path(trainer.run_dir), goal.search_dirs, cache_dir, no_cache)
    if mlflow:
        tracking.log_run(trained, {**options, "run_dir": str(trained.run_dir)}, mlflow)
    return trained


def _trained(result: Any, run_dir: Path, search_dirs: tuple, cache_dir: Any, no_cache: bool) -> Trained:
    """The API's record of a finished `Trainer` run."""
    return Trained(
        workflow=Workflow(result.program, cache_dir=cache_dir, no_cache=no_cache, search_dirs=search_dirs),
        program=result.program,
        source=result.source,
        scores=scores_of(result),
        history=tuple(result.history),
        run_dir=run_dir,
        artifact=Path(result.artifact) if result.artifact else None,
        stopped=result.stopped,
        accounting=result.accounting,
        new_calls=result.new_calls,
        test_accounting=result.test_accounting,
        run=result.run,
    )


def optimize(workflow: Any, train: Any, val: Any, **kw: Any) -> Trained:
    """Train `workflow`'s trainable params on `train`, keeping what wins on `val`.

    workflow: a `@promptc.workflow` function, a `.pflow`/`.py`/`.pfc` path (`"mod.py:name"`),
    a compiled `Program` or a loaded `Workflow`. train/val/test: a list of dicts, any
    iterable of mappings, a pandas DataFrame, a Hugging Face `Dataset`, or a data file path
    (.jsonl, .json, .csv, .parquet, a saved dataset folder). The keywords are
    `aoptimize`'s: steps, batch_size, proposals, threshold, max_calls, max_tokens,
    max_cost, run_dir, out, seed, resume, concurrency, engine, cache_dir, no_cache,
    timeouts, ray (run the model calls on Ray actors: a cluster address or a
    `RayTarget`, see promptc/runtime/ray_executor.py; ignored with `engine`), fields
    ({input: column}), trust_code, progress, mlflow (True: log the run
    to ./mlruns; a tracking URI; see promptc.api.tracking).

    Raises `promptc.DataError` (before any call) when a row lacks an input or the answer,
    and `promptc.ModelStopped` when the engine stopped asking a model that failed call
    after call (runtime/breaker.py; the run folder keeps the last round's checkpoint, so
    `resume=True` continues once the model answers again). Works inside a running event loop too (a notebook cell): it then runs on a worker thread.
    """
    return run_sync(aoptimize(workflow, train, val, **kw))


def new_engine(cache_dir: str | Path | None, no_cache: bool, timeouts: Mapping[str, Any] | None, ray: Any = None):
    """The default engine (on-disk cache under `.promptc/cache` unless told otherwise;
    model calls on Ray actors with `ray`, else where PROMPTC_RAY_ADDRESS says)."""
    kw: dict[str, Any] = dict(timeouts or {})
    if cache_dir is not None:
        kw["cache_dir"] = cache_dir
    return make_engine(no_cache=no_cache, ray=ray, **kw)


__all__ = ["Trained", "aoptimize", "new_engine", "optimize"]
