"""MLflow tracking of a training run (the `mlflow` extra: `pip install 'promptc[mlflow]'`).

    promptc.optimize(trec, train, val, mlflow=True)          # ./mlruns, a local store
    promptc optimize trec.pflow ... --mlflow [TRACKING_URI]

One MLflow run per training run, in the experiment named after the workflow: the options
as params, the model of each role and the seed; the best validation score after each
round as the metric `val` (step = the round), the start and final validation and test
scores; the `.pfc`, `report.html`, `history.jsonl` and `summary.json` as artifacts.
Logged when the run has finished (an interrupted run logs nothing: `--resume` it first).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Mapping

from promptc.optim.roles import ROLES, model_for

DEFAULT_URI = "mlruns"


def require() -> None:
    """Fail before training, not after, when tracking is asked for without the extra."""
    if importlib.util.find_spec("mlflow") is None:
        raise RuntimeError("MLflow tracking needs the mlflow extra: pip install 'promptc[mlflow]'")


def log_run(trained: Any, options: Mapping[str, Any], uri: str | bool | None = True) -> str:
    """Log a finished run; the MLflow run id."""
    try:
        import mlflow  # noqa: PLC0415 - an optional extra, imported only when tracking is asked for
    except ImportError:
        raise RuntimeError("MLflow tracking needs the mlflow extra: pip install 'promptc[mlflow]'") from None
    target = DEFAULT_URI if uri is True or not uri else str(uri)
    if "://" not in target:
        target = Path(target).resolve().as_uri()
    if target.startswith("file:"):
        # a plain folder store: what mlflow-skinny writes without a server or a database;
        # recent MLflow asks for an explicit opt-in to it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(target)
    mlflow.set_experiment(f"promptc-{trained.program.workflow.name}")
    params = {k: _param(v) for k, v in options.items() if v is not None}
    for role in ROLES:
        params[f"model.{role}"] = _param(model_for(trained.source, role))
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        for entry in trained.history:
            if entry.get("best") is not None:
                mlflow.log_metric("val", float(entry["best"]), step=int(entry.get("step", 0)))
        metrics = {k: float(v) for k, v in trained.scores.items() if isinstance(v, (int, float)) and v is not None}
        mlflow.log_metrics(metrics)
        mlflow.log_metric("requests", float(sum(r.get("requests", 0) for r in trained.accounting.values())))
        mlflow.set_tag("stopped", trained.stopped)
        mlflow.set_tag("changed", ", ".join(trained.changed) or "none")
        files = [trained.artifact] + [trained.run_dir / n for n in ("report.html", "history.jsonl", "summary.json")]
        for f in files:
            if f is not None and Path(f).is_file():
                mlflow.log_artifact(str(f))
        return run.info.run_id


def _param(v: Any) -> str:
    text = str(v)
    return text if len(text) <= 500 else text[:497] + "..."


__all__ = ["DEFAULT_URI", "log_run", "require"]
