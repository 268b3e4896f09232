"""`report.html`: one self-contained page (inline CSS and SVG, no script, no external URL).

Readable on a phone (viewport meta, the chart scales down, wide tables scroll in their
own box). Sections: the scores (start, best, test), an SVG chart of the validation score per step
(best so far, and each evaluated proposal as a dot), the accepted params as unified diffs
against the source (difflib), the proposals of every step with the reason of each
rejection, and the calls / tokens / cost per phase. Every text from the run is escaped
with `html.escape`.
"""

from __future__ import annotations

import difflib
import html
from typing import Any

from promptc.ir import Program
from promptc.params_view import param_text, params_to_data

CSS = """
body{font-family:system-ui,sans-serif;font-size:16px;margin:2em auto;padding:0 1em;max-width:60em;color:#222}
.wide{overflow-x:auto;max-width:100%}svg{max-width:100%;height:auto}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
pre{background:#f8f8f8;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.add{color:#075e00;background:#e6ffe6}.del{color:#8b0000;background:#ffe6e6}.hunk{color:#555}
.ok{color:#075e00}.no{color:#8b0000}
"""


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
    rows = ["<table><tr><th>step</th><th>minibatch</th><th>failing</th><th>backward calls</th>"
            "<th class=l>proposals</th><th>best val</th></tr>"]
    for h in history:
        props = []
        for p in h.get("proposals", []):
            mark = '<span class="ok">accepted</span>' if p.get("accepted") else f'<span class="no">{e(p.get("reason") or "rejected")}</span>'
            props.append(f"<div><b>{e(p['param'])}</b> val {e(fmt(p.get('val')))}: {mark}"
                         f"<pre>{e(p.get('text') or '(no proposal)')}</pre></div>")
        rows.append(
            f"<tr><td>{h['step']}</td><td>{fmt(h.get('minibatch_score'))}</td><td>{h.get('failing', 0)}</td>"
            f"<td>{h.get('backward_calls', 0)}</td><td class=l>{''.join(props) or '-'}</td><td>{fmt(h.get('best'))}</td></tr>"
        )
    return "".join(rows) + "</table>"


def filters_table(filters: dict) -> str:
    if not filters:
        return "<p>No optimizer reply was refused by a filter.</p>"
    rows = "".join(f"<tr><td class=l>{e(k)}</td><td>{int(v)}</td></tr>" for k, v in sorted(filters.items()))
    return f"<table><tr><th class=l>filter</th><th>replies refused</th></tr>{rows}</table>"


def render(
    source: Program, trained: Program, history: list[dict], scores: dict, accounting: dict, filters: dict | None = None
) -> str:
    before, after = params_to_data(source), params_to_data(trained)
    diffs = []
    for name, d in after.items():
        a, b = param_text(before.get(name, {})), param_text(d)
        if a != b:
            diffs.append(f"<h3>{e(name)}</h3>" + diff_html(a, b, name))
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
        f"<h2>Scores</h2><div class=wide><table>{score_rows}</table></div>",
        "<h2>Validation score per step</h2>",
        chart(history, scores.get("start_val")),
        "<h2>Changed params (diff against the source)</h2>",
        "".join(diffs) or "<p>No param changed: no proposal beat the starting validation score.</p>",
        "<h2>Calls, tokens and cost per phase</h2>",
        f"<div class=wide>{accounting_table(accounting)}</div>",
        "<h2>Optimizer replies refused before validation</h2>",
        filters_table(filters or {}),
        "<h2>Steps</h2>",
        f"<div class=wide>{steps_table(history)}</div>",
        "</body></html>",
    ])
