"""`report.html`: one self-contained page (inline CSS and SVG, no script, no external URL).

Readable on a phone (viewport meta, the chart scales down, wide tables scroll in their
own box). Sections: the scores (start, best, test) with the `end_line`, the run (promptc
version, models per role, seed, start, duration, machine, options), an SVG chart of the
validation score per step (best so far, and each evaluated proposal as a dot), the
accepted params as unified diffs against the source (difflib; a demos param's diff, or a
long one, is folded), the calls / tokens / cost per phase, the filter counts, and every
round: the feedback each param received (training row, loop step, node, text) and every
proposal with its verdict and every optimizer reply with the filter that refused it. A
long text is folded (`<details>`: its first line shows). Every text from the run is
escaped with `html.escape`.
"""

from __future__ import annotations

import difflib
import html
from typing import Any, Mapping

from promptc.ir import Program
from promptc.params_view import param_text, params_to_data

CSS = """
body{font-family:system-ui,sans-serif;font-size:16px;margin:2em auto;padding:0 1em;max-width:60em;color:#222}
.wide{overflow-x:auto;max-width:100%}svg{max-width:100%;height:auto}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
pre{background:#f8f8f8;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.add{color:#075e00;background:#e6ffe6}.del{color:#8b0000;background:#ffe6e6}.hunk{color:#555}
.ok{color:#075e00}.no{color:#8b0000}summary{cursor:pointer}details{margin:.2em 0}
.round{border-top:1px solid #ccc;margin-top:1em}.prop{margin:.4em 0 .4em 1em}
"""
FOLD_CHARS = 240  # a text longer than this (or of more than FOLD_LINES lines) is folded
FOLD_LINES = 4
FOLD_DIFF_LINES = 30


def e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def chart(history: list[dict], start: float | None, width: int = 640, height: int = 240) -> str:
    """Inline SVG: best validation score per step (line) and evaluated proposals (dots)."""
    pts = [(0, start if start is not None else 0.0)] + [(h["step"], h.get("best") or 0.0) for h in history]
    dots = [
        (h["step"], p["val"], bool(p.get("accepted")))
        for h in history
        for p in h.get("proposals", [])
        if p.get("val") is not None
    ]
    n = max(1, max(x for x, _ in pts))
    pad = 36

    def X(s: float) -> float:
        return pad + (width - 2 * pad) * s / n

    def Y(v: float) -> float:
        return height - pad - (height - 2 * pad) * max(0.0, min(1.0, v))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="validation score per step">']
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>')
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="4" y="{Y(v) + 4:.1f}" font-size="11" fill="#666">{v:.2f}</text>')
    for s in range(0, n + 1):
        parts.append(f'<text x="{X(s) - 3:.1f}" y="{height - 12}" font-size="11" fill="#666">{s}</text>')
    path = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v in pts)
    parts.append(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{path}"/>')
    for s, v in pts:
        parts.append(f'<circle cx="{X(s):.1f}" cy="{Y(v):.1f}" r="3" fill="#1f5fbf"><title>step {s}: best {v:.3f}</title></circle>')
    for s, v, ok in dots:
        color = "#2a9d2a" if ok else "#d0453a"
        parts.append(f'<circle cx="{X(s) + 6:.1f}" cy="{Y(v):.1f}" r="2.5" fill="{color}"><title>proposal at step {s}: {v:.3f}</title></circle>')
    parts.append(f'<text x="{pad}" y="14" font-size="12" fill="#333">validation score (line: best so far; dots: proposals, green accepted)</text>')
    parts.append("</svg>")
    return "".join(parts)


def folded(text: str | None, empty: str = "(none)") -> str:
    """`text` in a <pre>; a long one in a <details> whose summary is its start."""
    if text is None or text == "":
        return f"<pre>{e(empty)}</pre>"
    if len(text) <= FOLD_CHARS and text.count("\n") < FOLD_LINES:
        return f"<pre>{e(text)}</pre>"
    head = " ".join(text[:100].split())
    return f"<details><summary>{e(head)}… ({len(text)} characters)</summary><pre>{e(text)}</pre></details>"


def end_line(scores: Mapping[str, Any], history: list[Mapping[str, Any]]) -> str:
    """What the validation scores say, without claiming a comparison that did not happen."""
    start, best = scores.get("start_val"), scores.get("best_val")
    if start is None:
        return "the starting validation did not complete; nothing was proposed or compared"
    if not history:
        return f"validation {start:.3f} (no round finished: nothing was compared)"
    proposals = [p for h in history for p in h.get("proposals") or []]
    line = f"validation {start:.3f} -> {best:.3f}"
    if not proposals:
        return line + " (no proposal was made)"
    if not any(p.get("val") is not None for p in proposals):
        return line + f" (none of {len(proposals)} proposal(s) reached validation)"
    return line



def diff_html(before: str, after: str, name: str) -> str:
    lines = []
    for line in difflib.unified_diff(
        before.splitlines(), after.splitlines(), f"{name} (source)", f"{name} (trained)", lineterm=""
    ):
        cls = "add" if line.startswith("+") and not line.startswith("+++") else (
            "del" if line.startswith("-") and not line.startswith("---") else "hunk")
        lines.append(f'<span class="{cls}">{e(line)}</span>')
    return "<pre>" + "\n".join(lines) + "</pre>"


def accounting_table(accounting: dict) -> str:
    rows = ["<table><tr><th class=l>phase</th><th>requests</th><th>new calls</th><th>errors</th>"
            "<th>prompt tokens</th><th>completion tokens</th><th>cost</th></tr>"]
    tot = {k: 0 for k in ("requests", "new_calls", "errors", "prompt_tokens", "completion_tokens", "cost")}
    for phase, c in accounting.items():
        if not any(c.values()):
            continue
        for k in tot:
            tot[k] += c.get(k, 0)
        rows.append(
            f"<tr><td class=l>{e(phase)}</td><td>{int(c.get('requests', 0))}</td><td>{int(c.get('new_calls', 0))}</td>"
            f"<td>{int(c.get('errors', 0))}</td><td>{int(c.get('prompt_tokens', 0))}</td>"
            f"<td>{int(c.get('completion_tokens', 0))}</td><td>{c.get('cost', 0):.4f}</td></tr>"
        )
    rows.append(
        f"<tr><th class=l>total</th><th>{int(tot['requests'])}</th><th>{int(tot['new_calls'])}</th><th>{int(tot['errors'])}</th>"
        f"<th>{int(tot['prompt_tokens'])}</th><th>{int(tot['completion_tokens'])}</th><th>{tot['cost']:.4f}</th></tr></table>"
    )
    return "".join(rows)


def steps_table(history: list[dict]) -> str:
    rows = ["<table><tr><th>round</th><th class=l>kind</th><th>minibatch</th><th>failing</th><th>backward calls</th>"
            "<th>proposals</th><th class=l>accepted</th><th>best val</th></tr>"]
    for h in history:
        rows.append(
            f"<tr><td>{e(h['step'])}</td><td class=l>{e(h.get('kind'))}</td><td>{fmt(h.get('minibatch_score'))}</td>"
            f"<td>{e(h.get('failing', 0))}</td><td>{e(h.get('backward_calls', 0))}</td>"
            f"<td>{len(h.get('proposals') or [])}</td><td class=l>{e(', '.join(h.get('accepted') or []) or '-')}</td>"
            f"<td>{fmt(h.get('best'))}</td></tr>"
        )
    return "".join(rows) + "</table>"


def verdict(p: Mapping[str, Any]) -> str:
    """A proposal's verdict in words (promptc.optim.history.VERDICTS), with its scores."""
    v = p.get("verdict") or ("accepted" if p.get("accepted") else "refused" if p.get("text") is None else "lost-gate")
    if v == "accepted":
        return f"accepted: validation {fmt(p.get('val'))} on {p.get('val_rows')} rows, gain {fmt(p.get('gain'))}"
    if v == "refused":
        return f"refused: {p.get('reason') or 'no candidate'}"
    if v == "lost-minibatch":
        return (f"lost on the failing minibatch samples (total score {fmt(p.get('failing_before'))} "
                f"with the incumbent, {fmt(p.get('failing_after'))} with the candidate)")
    return (f"lost at the gate: validation {fmt(p.get('val'))} on {p.get('val_rows')} rows, "
            f"gain {fmt(p.get('gain'))} ({p.get('reason') or 'rejected'})")


def feedback_html(gradients: Mapping[str, Any]) -> str:
    """The feedback each param received in a round, folded per param."""
    out = []
    for param, items in gradients.items():
        if not isinstance(items, list):  # a history written before the texts were kept: a count
            out.append(f"<p><b>{e(param)}</b>: {e(items)} feedback text(s) (not kept)</p>")
            continue
        lines = "".join(
            f"<li>row {e(g.get('row'))}" + (f", loop step {e(g['loop_step'])}" if g.get("loop_step") is not None else "")
            + (f", at <code>{e(g.get('node'))}</code>" if g.get("node") else "") + f": {folded(g.get('text'))}</li>"
            for g in items
        )
        out.append(f"<details><summary><b>{e(param)}</b>: {len(items)} feedback text(s)</summary><ul>{lines}</ul></details>")
    return "".join(out)


def proposal_html(p: Mapping[str, Any]) -> str:
    ok = p.get("accepted")
    head = (f'<div class="prop"><b>{e(p.get("param"))}</b> ({e(p.get("kind"))}): '
            f'<span class="{"ok" if ok else "no"}">{e(verdict(p))}</span>')
    body = folded(p.get("text")) if p.get("text") is not None else ""
    refused = [r for r in p.get("replies") or [] if r.get("filter")]
    if refused:
        body += "".join(
            f"<div>optimizer reply refused by <b>{e(r.get('filter'))}</b>: {e(r.get('reason'))}"
            f"{folded(r.get('text'), '(no reply: the call failed)')}</div>"
            for r in refused
        )
    return head + body + "</div>"


def rounds_html(history: list[dict]) -> str:
    """Every round: the feedback received, then every proposal with its verdict."""
    out = []
    for h in history:
        grads = h.get("gradients") or {}
        props = h.get("proposals") or []
        out.append(
            f'<div class="round"><h3>Round {e(h.get("step"))} ({e(h.get("kind"))}): best {fmt(h.get("best"))}</h3>'
            + (f"<p>Minibatch rows {e(', '.join(str(i) for i in h.get('batch') or []))}: "
               f"mean {fmt(h.get('minibatch_score'))}, {e(h.get('failing', 0))} failing.</p>" if h.get("batch") else "")
            + (feedback_html(grads) if grads else "")
            + ("".join(proposal_html(p) for p in props) or "<p>No proposal.</p>")
            + "</div>"
        )
    return "".join(out)


def run_table(run: Mapping[str, Any] | None) -> str:
    if not run:
        return "<p>No run metadata.</p>"
    models = run.get("models") or {}
    machine = run.get("machine") or {}
    rows = [("promptc", run.get("promptc")), ("seed", run.get("seed")), ("started", run.get("started")),
            ("duration (s)", run.get("seconds"))]
    rows += [(f"model ({r})", m if m is not None else "-") for r, m in models.items()]
    rows += [(f"machine {k}", v) for k, v in machine.items()]
    rows += [(f"option {k}", v) for k, v in (run.get("options") or {}).items()]
    return "<table>" + "".join(f"<tr><td class=l>{e(k)}</td><td class=l>{e(fmt(v))}</td></tr>" for k, v in rows) + "</table>"


def filters_table(filters: dict) -> str:
    if not filters:
        return "<p>No optimizer reply was refused by a filter.</p>"
    rows = "".join(f"<tr><td class=l>{e(k)}</td><td>{int(v)}</td></tr>" for k, v in sorted(filters.items()))
    return f"<table><tr><th class=l>filter</th><th>replies refused</th></tr>{rows}</table>"


def render(
    source: Program, trained: Program, history: list[dict], scores: dict, accounting: dict,
    filters: dict | None = None, run: Mapping[str, Any] | None = None,
) -> str:
    before, after = params_to_data(source), params_to_data(trained)
    diffs = []
    for name, d in after.items():
        a, b = param_text(before.get(name, {})), param_text(d)
        if a != b:
            diff = diff_html(a, b, name)
            if d.get("kind") == "demos" or diff.count("\n") > FOLD_DIFF_LINES:
                diff = f"<details><summary>the diff ({diff.count(chr(10)) + 1} lines)</summary>{diff}</details>"
            diffs.append(f"<h3>{e(name)}</h3>" + diff)
    score_rows = "".join(
        f"<tr><td class=l>{e(k)}</td><td>{e(fmt(v))}</td></tr>" for k, v in scores.items()
    )
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',  # phones: no zoomed-out page
        f"<title>promptc training report: {e(source.workflow.name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Training report: {e(source.workflow.name)}</h1>",
        f"<p>Source: {e(source.file)}</p>",
        f"<h2>Scores</h2><p>{e(scores.get('stopped'))}: {e(end_line(scores, history))}</p>"
        f"<div class=wide><table>{score_rows}</table></div>",
        f"<h2>Run</h2><div class=wide>{run_table(run)}</div>",
        "<h2>Validation score per step</h2>",
        chart(history, scores.get("start_val")),
        "<h2>Changed params (diff against the source)</h2>",
        "".join(diffs) or f"<p>No param changed: {e(unchanged(history, scores))}.</p>",
        "<h2>Calls, tokens and cost per phase</h2>",
        f"<div class=wide>{accounting_table(accounting)}</div>",
        "<h2>Optimizer replies refused before validation</h2>",
        filters_table(filters or {}),
        "<h2>Rounds</h2>",
        f"<div class=wide>{steps_table(history)}</div>",
        rounds_html(history),
        "</body></html>",
    ])


def unchanged(history: list[dict], scores: Mapping[str, Any]) -> str:
    """Why no param changed, as far as the history says."""
    if scores.get("start_val") is None:
        return "the run stopped before the starting validation completed"
    proposals = [p for h in history for p in h.get("proposals") or []]
    if not proposals:
        return "no proposal was made"
    if not any(p.get("val") is not None for p in proposals):
        return "no proposal reached validation"
    return "no proposal beat the starting validation score"
