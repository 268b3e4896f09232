"""What a training run leaves: the `Result`, the per-phase accounting table, and the files
written in the run folder.

    run_dir/<workflow>.pfc   the trained program (promptc.artifact), with the history,
                             scores, filter counts, the run's metadata (`run`) and the
                             source's params as extras
    run_dir/history.jsonl    one entry per round (promptc.optim.history)
    run_dir/summary.json     scores, training and test totals, changed params, filters,
                             the run's metadata (`run`)
    run_dir/report.html      the report (promptc.optim.report)

The run's metadata (`RunInfo.data()`): promptc version, the model string of each role
(promptc.optim.roles; None for a role nobody serves), seed, the options as given, start
time (UTC, ISO 8601), duration in seconds, machine (platform, python, cpu count). The
`.pfc` holds it without the start time, the duration and the options that say where the
run was kept (`PLACE_OPTIONS`), so that a resumed run writes the same artifact, byte for
byte, as the uninterrupted one.

A run stopped before the starting validation completed has no scores (`start_val` and
`best_val` None): promptc.optim.report.end_line says that nothing was compared.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from attrs import field, frozen

from promptc import __version__
from promptc.ir import Program
from promptc.optim import history as hist
from promptc.optim.history import Round
from promptc.optim.roles import ROLES, model_for
from promptc.params_view import params_to_data
from promptc.runtime.accounting import Accounting


PLACE_OPTIONS = ("resume", "run_dir", "out", "cache_dir")  # where and how a run was continued, not what it did


@frozen
class RunInfo:
    """What ran, where and when (the keys of `data()` are the module doc's)."""

    version: str
    models: dict[str, str | None]
    seed: int
    options: dict[str, Any]
    started: str  # UTC, ISO 8601
    seconds: float
    machine: dict[str, Any]

    def data(self, *, stable: bool = False) -> dict[str, Any]:
        """As a JSON-able map; `stable` leaves out what differs between a run and its resumed
        continuation, or between the same run in two folders (start time, duration,
        `PLACE_OPTIONS`), as the `.pfc` must."""
        if stable:
            options = {k: v for k, v in self.options.items() if k not in PLACE_OPTIONS}
            return {"promptc": self.version, "models": dict(self.models), "seed": self.seed, "options": options,
                    "machine": dict(self.machine)}
        return {
            "promptc": self.version, "models": dict(self.models), "seed": self.seed, "options": dict(self.options),
            "started": self.started, "seconds": self.seconds, "machine": dict(self.machine),
        }


def _model(program: Program, role: str) -> str | None:
    try:
        return model_for(program, role)
    except ValueError:  # a program without a model
        return None


def run_info(program: Program, *, seed: int, options: Mapping[str, Any], started: float, seconds: float) -> RunInfo:
    """The metadata of a run of `program` started at `started` (epoch seconds) that took `seconds`."""
    return RunInfo(
        version=__version__,
        models={r: _model(program, r) for r in ROLES},
        seed=seed,
        options={k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in options.items()},
        started=datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        seconds=round(seconds, 3),
        machine={"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    )


@frozen
class Result:
    program: Program
    source: Program
    start_val: float | None  # None: the starting validation did not complete (nothing was compared)
    best_val: float | None
    rounds: tuple[Round, ...]
    steps_done: int
    stopped: str
    accounting: dict  # phase_table of the training
    test_start: float | None = None
    test_best: float | None = None
    test_accounting: dict = field(factory=dict)
    artifact: str | None = None
    new_calls: int = 0  # requests of THIS process that reached a model (not the cache)
    run: RunInfo | None = None  # the run's metadata

    @property
    def history(self) -> list[dict]:
        """The rounds as history entries (what history.jsonl holds: promptc.optim.history.entry)."""
        return [hist.entry(r) for r in self.rounds]


def phase_table(acc: Accounting, *, stable: bool = False) -> dict:
    """{phase: {requests, new_calls, errors, prompt_tokens, completion_tokens, cost}};
    `stable` leaves out new_calls, which depends on what the cache held (history entries
    must be the same for a resumed run and an uninterrupted one)."""
    out = {}
    for p, c in acc.by_phase().items():
        row = {"requests": c.requests, "new_calls": c.calls, "errors": c.errors, "prompt_tokens": c.prompt_tokens,
               "completion_tokens": c.completion_tokens, "cost": c.cost}
        if stable:
            del row["new_calls"]
        out[p] = row
    return out



def scores_of(result: Result) -> dict:
    """The run's scores as summary.json, the `.pfc` and the API give them."""
    return {
        "start_val": result.start_val,
        "best_val": result.best_val,
        "test_start": result.test_start,
        "test_best": result.test_best,
        "steps": result.steps_done,
        "stopped": result.stopped,
    }


def write(result: Result, run_dir: Path, out: Path) -> Path:
    """Write the run's files; the artifact's path."""
    from promptc import artifact
    from promptc.optim import report

    run_dir.mkdir(parents=True, exist_ok=True)
    scores = scores_of(result)
    history = result.history
    filters: dict[str, int] = {}
    for h in history:
        for f, n in (h.get("filtered") or {}).items():
            filters[f] = filters.get(f, 0) + n
    run = result.run.data() if result.run else None
    extra = {
        "history": hist.stable(history),
        "run": result.run.data(stable=True) if result.run else None,
        "scores": scores,
        "filtered": filters,
        "source_params": params_to_data(result.source),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    artifact.save(result.program, out, extra=extra)
    hist.write_jsonl(run_dir / "history.jsonl", history)
    accounting = dict(result.accounting)
    for phase, row in result.test_accounting.items():
        accounting[f"{phase} (not in the budget)"] = row

    def totals(table: dict) -> dict:
        keys = ("requests", "new_calls", "errors", "prompt_tokens", "completion_tokens", "cost")
        return {k: sum(row.get(k, 0) for row in table.values()) for k in keys}

    summary = {
        "scores": scores,
        "training": totals(result.accounting),
        "test": totals(result.test_accounting),
        "changed": [p.name for p in result.program.params if p != result.source.param(p.name)],
        "filtered": filters,
        "run": run,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.html").write_text(
        report.render(result.source, result.program, history, scores, accounting, filters=filters, run=run),
        encoding="utf-8",
    )
    return out


