"""`promptc inspect OUT.pfc`: the params of an artifact (with a diff against the source
params when it came from `promptc optimize`), the training history, the scores and the
run's metadata (promptc version, models, seed, options, machine), and the user code files
the workflow would import when it runs. `--history` shows every round: the feedback each
param received (training row, loop step, node, text) and every proposal with its verdict
(promptc.optim.history) and every optimizer reply a filter refused, with the filter and
its reason; a text longer than `LONG` characters is cut to its start (the `.pfc` and
history.jsonl hold it whole).

An artifact is data from elsewhere: `extra` is validated against the shape the trainer
writes (`_check_extra`) before anything is shown, and every text from the file is printed
literally (never read as rich markup) and folded into lines of the terminal's width by
this module, in linear time, before rich sees it.

Exit codes: 0 shown; 1 a missing, corrupt, foreign or malformed file (one line), or anything
else that stops the showing (one line too: `inspect` never prints a traceback).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.pfc", help="a compiled or optimized artifact")
    parser.add_argument("--history", action="store_true",
                        help="show every round: the feedback each param received and every proposal with its verdict")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout: workflow, params (with the source's), scores, run, "
                        "history (with --history)")


class _Malformed(Exception):
    pass


_SCALAR = (str, int, float, bool, type(None))
_MAX_DIFF_LINES = 2000  # difflib is quadratic in the worst case
LONG = 600  # --history shows the first LONG characters of a text


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise _Malformed(what)


def _check_param_data(name: Any, d: Any) -> None:
    _need(isinstance(name, str) and isinstance(d, dict), "source_params must map names to param values")
    _need(isinstance(d.get("kind", ""), str) and isinstance(d.get("text", ""), str), f"source param {name!r} is malformed")
    nearest = d.get("nearest", 0)
    _need(type(nearest) is int and 0 <= nearest < 2**31, f"the nearest setting of source param {name!r} is not a count")
    demos = d.get("demos", [])
    _need(isinstance(demos, (list, tuple)), f"the demos of source param {name!r} are not a list")
    for x in demos:
        _need(isinstance(x, dict) and isinstance(x.get("inputs"), (list, tuple)) and "output" in x, f"a demo of {name!r} is malformed")
        for kv in x["inputs"]:
            _need(isinstance(kv, (list, tuple)) and len(kv) == 2 and isinstance(kv[0], str), f"a demo input of {name!r} is malformed")


def _check_extra(extra: Any) -> dict:
    """`extra` if it has the shape `promptc optimize` writes; `_Malformed` names what is wrong."""
    _need(isinstance(extra, dict), "extra is not a map")
    scores = extra.get("scores") or {}
    _need(isinstance(scores, dict), "scores is not a map")
    for k, v in scores.items():
        _need(isinstance(k, str) and isinstance(v, _SCALAR), "scores must map names to numbers or text")
    source = extra.get("source_params") or {}
    _need(isinstance(source, dict), "source_params is not a map")
    for name, d in source.items():
        _check_param_data(name, d)
    filtered = extra.get("filtered") or {}
    _need(isinstance(filtered, dict), "filtered is not a map")
    for k, v in filtered.items():
        _need(isinstance(k, str) and isinstance(v, _SCALAR), "filtered must map filter names to counts")
    history = extra.get("history") or []
    _need(isinstance(history, (list, tuple)), "history is not a list")
    for h in history:
        _need(isinstance(h, dict), "a history entry is not a map")
        for key in ("step", "kind", "minibatch_score", "failing", "backward_calls", "best"):
            _need(isinstance(h.get(key), _SCALAR), f"history field {key!r} is not a number or text")
        accepted = h.get("accepted") or []
        _need(isinstance(accepted, (list, tuple)) and all(isinstance(a, str) for a in accepted), "history field 'accepted' is not a list of names")
        proposals = h.get("proposals") or []
        _need(isinstance(proposals, (list, tuple)), "history field 'proposals' is not a list")
        for p in proposals:
            _need(isinstance(p, dict), "a proposal is not a map")
            for key in ("param", "reason", "text", "verdict"):
                _need(isinstance(p.get(key), _SCALAR), f"proposal field {key!r} is not text")
            replies = p.get("replies") or []
            _need(isinstance(replies, (list, tuple)), "proposal field 'replies' is not a list")
            for r in replies:
                _need(isinstance(r, dict) and all(isinstance(r.get(k), _SCALAR) for k in ("text", "filter", "reason")),
                      "a proposal's reply is malformed")
        _check_gradients(h.get("gradients") or {})
    run = extra.get("run") or {}
    _need(isinstance(run, dict), "run is not a map")
    for k, v in run.items():
        _need(isinstance(k, str), "run must map names to values")
        if isinstance(v, dict):
            _need(all(isinstance(a, str) and isinstance(b, _SCALAR) for a, b in v.items()), f"run field {k!r} is malformed")
        else:
            _need(isinstance(v, _SCALAR), f"run field {k!r} is malformed")
    return extra


def _check_gradients(gradients: Any) -> None:
    _need(isinstance(gradients, dict), "history field 'gradients' is not a map")
    for param, items in gradients.items():
        _need(isinstance(param, str), "history field 'gradients' must map param names to feedback")
        if isinstance(items, int):  # a history written before the texts were kept
            continue
        _need(isinstance(items, (list, tuple)), f"the feedback of {param!r} is not a list")
        for g in items:
            _need(isinstance(g, dict) and all(isinstance(g.get(k), _SCALAR) for k in ("row", "loop_step", "node", "text")),
                  f"a feedback of {param!r} is malformed")


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _fold(text: str, width: int) -> str:
    """`text` with every line cut into pieces of at most `width` characters (linear)."""
    width = max(20, width)
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
        else:
            out.extend(line[i : i + width] for i in range(0, len(line), width))
    return "\n".join(out)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _show_user_code(program: Any, file: str, show: Any) -> None:
    """The user files running the artifact would import, and which the trust rule refuses."""
    from pathlib import Path

    from promptc.bind import BindError, confined_file

    used = set(program.called())
    if program.train is not None:
        used.add(program.train.metric)
    modules = sorted({f.module for f in program.functions if f.name in used and not f.module.startswith("std.")})
    if not modules:
        return
    show("\nuser code this workflow imports when it runs:")
    root = Path(file).resolve().parent
    for module in modules:
        try:
            confined_file(module, root)
            verdict = "in the artifact's folder"
        except BindError as e:
            if str(e).startswith("cannot use module file"):  # no file can have that name
                verdict = "no file of that name can be imported"
            else:
                verdict = "refused unless --trust-code: " + str(e).split(": ", 1)[-1].split(";")[0]
        show(f"  {_short(module, 200)} ({_short(verdict, 200)})")


def main(args: argparse.Namespace) -> int:
    try:
        from promptc.artifact import load_artifact

        program, extra = load_artifact(args.file)
        extra = _check_extra(extra or {})
    except _Malformed as e:
        sys.stderr.write(f"promptc inspect: error: {args.file}: malformed .pfc extra section ({_short(str(e), 300)})\n")
        return 1
    except Exception as e:  # ArtifactError, OSError: one line
        sys.stderr.write(f"promptc inspect: error: {_short(str(e), 600)}\n")
        return 1
    try:
        if args.json:
            sys.stdout.write(json.dumps(_as_json(program, extra, args.history), ensure_ascii=False, default=str) + "\n")
        else:
            _show(program, extra, args)
    except Exception as e:  # what the checks above missed: still one line, never a traceback
        sys.stdout.flush()
        sys.stderr.write(f"promptc inspect: error: {args.file}: cannot show this artifact ({type(e).__name__}: {_short(str(e), 300)})\n")
        return 1
    return 0


def _as_json(program: Any, extra: dict, history: bool) -> dict:
    """The artifact as one JSON-able map (`--json`): what the display shows, untruncated."""
    from promptc.params_view import param_text, params_to_data

    source = extra.get("source_params") or {}
    params = {}
    for name, d in params_to_data(program).items():
        p = program.param(name)
        params[name] = {
            "kind": p.kind, "trainable": p.trainable, "role": p.role, "value": d,
            "changed": name in source and param_text(source[name]) != param_text(d),
        }  # fmt: skip
    out = {
        "workflow": program.workflow.name,
        "file": program.file,
        "source_hash": program.source_hash,
        "inputs": {n: str(t) for n, t in program.workflow.inputs},
        "params": params,
        "source_params": source,
        "scores": extra.get("scores") or {},
        "filtered": extra.get("filtered") or {},
        "run": extra.get("run") or {},
        "functions": sorted({f"{f.module}.{f.name}" for f in program.functions}),
    }
    if history:
        out["history"] = list(extra.get("history") or [])
    return out


def _show(program: Any, extra: dict, args: argparse.Namespace) -> None:
    """Print the artifact's params (diffed against the source's), user code, history."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from promptc.params_view import param_text, params_to_data

    console = Console(highlight=False)
    width = max(20, console.width - 2)

    def show(text: str, style: str = "") -> None:
        # no_wrap: the text is already folded here; rich's own folding of a long
        # unbroken word is quadratic in its length
        console.print(Text(_fold(text, width), style=style), no_wrap=True, overflow="ignore", crop=False)

    source = extra.get("source_params") or {}
    head = Text()
    head.append(_short(program.workflow.name), style="bold")
    head.append(f" from {_short(program.file, 200)} (source {str(program.source_hash)[:12]})")
    console.print(head)
    scores = extra.get("scores")
    if scores:
        t = Table(title="scores", show_header=False)
        for k, v in scores.items():
            t.add_row(Text(_short(k)), Text(_short(_fmt(v))))
        console.print(t)
    console.print(Text("params", style="bold"))
    for name, d in params_to_data(program).items():
        p = program.param(name)
        flag = "trainable " if p.trainable else ""
        now = param_text(d)
        before = param_text(source[name]) if name in source else None
        line = Text("\n")
        line.append(name, style="bold")
        line.append(f": {flag}{p.kind}")
        if before is not None:
            line.append(" (changed)" if before != now else " (unchanged)", style="green" if before != now else "")
        if p.role:
            line.append(f" — {p.role}")
        if len(line) > width:
            show(line.plain)  # a long role: folded, unstyled
        else:
            console.print(line, no_wrap=True, crop=False)
        if before is not None and before != now and before.count("\n") + now.count("\n") > _MAX_DIFF_LINES:
            show(now)  # too long to diff in bounded time: the trained text as it is
        elif before is not None and before != now:
            for diff_line in difflib.unified_diff(before.splitlines(), now.splitlines(), "source", "trained", lineterm=""):
                style = "green" if diff_line.startswith("+") else "red" if diff_line.startswith("-") else "dim"
                show(diff_line, style)
        else:
            show(now or "(empty)")
    _show_user_code(program, args.file, show)
    filtered = extra.get("filtered")
    if filtered:
        t = Table(title="optimizer replies refused before validation", show_header=True)
        t.add_column("filter")
        t.add_column("refused", justify="right")
        for k, v in sorted(filtered.items(), key=lambda kv: str(kv[0])):
            t.add_row(Text(_short(k)), Text(_short(_fmt(v))))
        console.print(t)
    _show_run(console, extra.get("run") or {})
    _show_history(console, extra.get("history") or [], args.history, show)


def _show_run(console: Any, run: dict) -> None:
    """The run's metadata, one row a value."""
    from rich.table import Table
    from rich.text import Text

    if not run:
        return
    t = Table(title="run", show_header=False)
    for k, v in run.items():
        if isinstance(v, dict):
            for a, b in v.items():
                t.add_row(Text(_short(f"{k} {a}")), Text(_short(_fmt(b), 200)))
        else:
            t.add_row(Text(_short(k)), Text(_short(_fmt(v), 200)))
    console.print(t)


def _cut(text: Any) -> str:
    text = str(text)
    return text if len(text) <= LONG else text[:LONG] + f"… [{len(text) - LONG} more characters]"


def _verdict(p: dict) -> str:
    v = p.get("verdict") or ("accepted" if p.get("accepted") else "refused" if p.get("text") is None else "lost-gate")
    if v == "accepted":
        return f"accepted (validation {_fmt(p.get('val'))} on {_fmt(p.get('val_rows'))} rows)"
    if v == "refused":
        return f"refused: {p.get('reason') or 'no candidate'}"
    if v == "lost-minibatch":
        return f"lost on the minibatch (failing samples {_fmt(p.get('failing_before'))} -> {_fmt(p.get('failing_after'))})"
    return f"lost at the gate (validation {_fmt(p.get('val'))} on {_fmt(p.get('val_rows'))} rows): {p.get('reason') or ''}"


def _show_round(h: dict, show: Any) -> None:
    """One round of `--history`: the feedback received, then the proposals with their verdicts."""
    show(f"\nround {_fmt(h.get('step'))} ({_fmt(h.get('kind'))}): best {_fmt(h.get('best'))}", "bold")
    for param, items in (h.get("gradients") or {}).items():
        if not isinstance(items, (list, tuple)):
            show(f"  feedback to {param}: {_fmt(items)} (texts not kept)")
            continue
        show(f"  feedback to {param} ({len(items)}):")
        for g in items:
            where = f"row {_fmt(g.get('row'))}" + (f", loop step {_fmt(g.get('loop_step'))}" if g.get("loop_step") is not None else "")
            show(f"    [{where}] {_cut(g.get('text'))}", "dim")
    for p in h.get("proposals") or []:
        show(f"  proposal for {_fmt(p.get('param'))}: {_verdict(p)}")
        for r in p.get("replies") or []:
            if r.get("filter"):
                show(f"    reply refused by {_fmt(r.get('filter'))}: {_fmt(r.get('reason'))}")
                show("      " + (_cut(r.get("text")) if r.get("text") is not None else "(no reply: the call failed)"), "dim")
        if p.get("text") is not None:
            show("    " + _cut(p.get("text")), "dim")


def _show_history(console: Any, history: list, proposals: bool, show: Any) -> None:
    """The history table, then (with --history) every proposal of every step."""
    from rich.table import Table
    from rich.text import Text

    if not history:
        return
    t = Table(title="history")
    for col in ("round", "kind", "minibatch", "failing", "backward calls", "proposals", "accepted", "best val"):
        t.add_column(col, justify="right")
    for h in history:
        cells = (
            _fmt(h.get("step")), _fmt(h.get("kind")), _fmt(h.get("minibatch_score")), _fmt(h.get("failing") or 0),
            _fmt(h.get("backward_calls") or 0), str(len(h.get("proposals") or [])),
            ", ".join(h.get("accepted") or []) or "-", _fmt(h.get("best")),
        )
        t.add_row(*(Text(_short(c)) for c in cells))
    console.print(t)
    if proposals:
        for h in history:
            _show_round(h, show)
