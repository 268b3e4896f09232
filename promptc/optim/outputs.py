"""What a training run leaves: the `Result`, the per-phase accounting table, and the files
written in the run folder.

    run_dir/<workflow>.pfc   the trained program (promptc.artifact), with the history,
                             scores, filter counts and the source's params as extras
    run_dir/history.jsonl    one entry per round (promptc.optim.history)
    run_dir/summary.json     scores, training and test totals, changed params, filters
    run_dir/report.html      the report (promptc.optim.report)
"""

from __future__ import annotations

import json
from pathlib import Path

from attrs import field, frozen

from promptc.ir import Program
from promptc.optim import history as hist
from promptc.optim.history import Round
from promptc.params_view import params_to_data
from promptc.runtime.accounting import Accounting


@frozen
class Result:
    program: Program
    source: Program
    start_val: float
    best_val: float
    rounds: tuple[Round, ...]
    steps_done: int
    stopped: str
    accounting: dict  # phase_table of the training
    test_start: float | None = None
    test_best: float | None = None
    test_accounting: dict = field(factory=dict)
    artifact: str | None = None
    new_calls: int = 0  # requests of THIS process that reached a model (not the cache)

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



def write(result: Result, run_dir: Path, out: Path) -> Path:
    """Write the run's files; the artifact's path."""
    from promptc import artifact
    from promptc.optim import report

    run_dir.mkdir(parents=True, exist_ok=True)
    scores = {
        "start_val": result.start_val,
        "best_val": result.best_val,
        "test_start": result.test_start,
        "test_best": result.test_best,
        "steps": result.steps_done,
        "stopped": result.stopped,
    }
    history = result.history
    filters: dict[str, int] = {}
    for h in history:
        for f, n in (h.get("filtered") or {}).items():
            filters[f] = filters.get(f, 0) + n
    extra = {
        "history": hist.stable(history),
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
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.html").write_text(
        report.render(result.source, result.program, history, scores, accounting, filters=filters),
        encoding="utf-8",
    )
    return out


