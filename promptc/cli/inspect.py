"""`promptc inspect OUT.pfc`: the params of an artifact (with a diff against the source
params when it came from `promptc optimize`), the training history and the scores.

Exit codes: 0 shown; 1 a missing, corrupt or foreign file.
"""

from __future__ import annotations

import argparse
import difflib
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.pfc", help="a compiled or optimized artifact")
    parser.add_argument("--history", action="store_true", help="show every proposal of every step")


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape
    from rich.text import Text

    from promptc.optim.checkpoint import params_to_data
    from promptc.optim.report import param_text

    try:
        from promptc.artifact import load_artifact

        program, extra = load_artifact(args.file)
    except Exception as e:  # ArtifactError, OSError: one line
        sys.stderr.write(f"promptc inspect: error: {e}\n")
        return 1
    console = Console()
    extra = extra or {}
    source = extra.get("source_params") or {}
    console.print(f"[bold]{program.workflow.name}[/bold] from {program.file} (source {program.source_hash[:12]})")
    scores = extra.get("scores")
    if scores:
        t = Table(title="scores", show_header=False)
        for k, v in scores.items():
            t.add_row(k, _fmt(v))
        console.print(t)
    console.print("[bold]params[/bold]")
    for name, d in params_to_data(program).items():
        p = program.param(name)
        flag = "trainable " if p.trainable else ""
        now = param_text(d)
        before = param_text(source[name]) if name in source else None
        status = "" if before is None else (" [green](changed)[/green]" if before != now else " (unchanged)")
        console.print(f"\n[bold]{name}[/bold]: {flag}{p.kind}{status}" + (f" — {p.role}" if p.role else ""))
        if before is not None and before != now:
            for line in difflib.unified_diff(before.splitlines(), now.splitlines(), "source", "trained", lineterm=""):
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                console.print(Text(line, style=style))
        else:
            console.print(Text(now or "(empty)"))
    filtered = extra.get("filtered")
    if isinstance(filtered, dict) and filtered:
        t = Table(title="optimizer replies refused before validation", show_header=True)
        t.add_column("filter")
        t.add_column("refused", justify="right")
        for k, v in sorted(filtered.items(), key=lambda kv: str(kv[0])):
            t.add_row(escape(str(k)), str(v))
        console.print(t)
    history = extra.get("history") or []
    if history:
        t = Table(title="history")
        for col in ("step", "minibatch", "failing", "backward calls", "proposals", "accepted", "best val"):
            t.add_column(col, justify="right")
        for h in history:
            t.add_row(
                str(h.get("step")), _fmt(h.get("minibatch_score")), str(h.get("failing", 0)),
                str(h.get("backward_calls", 0)), str(len(h.get("proposals", []))),
                ", ".join(h.get("accepted", [])) or "-", _fmt(h.get("best")),
            )
        console.print(t)
        if args.history:
            for h in history:
                for p in h.get("proposals", []):
                    verdict = "accepted" if p.get("accepted") else p.get("reason") or "rejected"
                    console.print(f"step {h['step']} {p['param']}: {verdict}")
                    console.print(Text((p.get("text") or "(no proposal)"), style="dim"))
    return 0
