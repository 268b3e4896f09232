"""A program's param values as plain data, and as the text a person reads.

What training changes in a program is its params: prompt texts, demos, the `nearest`
setting. `params_to_data` gives them as plain data by param name (a view, one way: the
`.pfc`'s `source_params` extra that `promptc inspect` diffs against; the trainer's
checkpoint keeps the params as records, promptc.optim.state), and `param_text` shows one
as text (`promptc inspect` and the report diff these). Neutral ground: both the CLI and
`promptc.optim` import it, so showing an artifact does not load training code.
"""

from __future__ import annotations

import json

from promptc.ir import Demo, Program


def _demo(d: Demo) -> dict:
    return {"inputs": [[k, v] for k, v in d.inputs], "output": d.output}


def params_to_data(program: Program) -> dict:
    """The values of every param of a program (what training changes)."""
    return {
        p.name: {"kind": p.kind, "text": p.text, "demos": [_demo(d) for d in p.demos], "nearest": p.nearest}
        for p in program.params
    }


def param_text(d: dict) -> str:
    """One param's value (an item of `params_to_data`) as text: a prompt's text, or one
    line per demo (`{inputs} -> output`, JSON)."""
    if d.get("kind") == "demos":
        lines = [
            json.dumps(dict((k, v) for k, v in x["inputs"]), ensure_ascii=False, default=str)
            + " -> " + json.dumps(x["output"], ensure_ascii=False, default=str)
            for x in d.get("demos", [])
        ]
        if d.get("nearest"):
            lines.insert(0, f"(a pool: each call shows the {d['nearest']} demos nearest to its inputs)")
        return "\n".join(lines)
    return d.get("text", "")
