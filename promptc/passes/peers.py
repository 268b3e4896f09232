"""Pass 5 — peer edges between trainable params.

The trainable params used by the same `llm` (its template params and its demos param)
are peers: when the optimizer rewrites one, it is shown the others read-only so the
update neither repeats nor contradicts them (an instruction should not restate the
answer format that a peer param already gives). A param's peers are the union over every
`llm` that a node of the workflow calls, sorted by name; a param that is not trainable
has no peers. The pass recomputes peers from scratch, so it is idempotent.
"""

from __future__ import annotations

from attrs import evolve

from promptc.ir import Program, walk


def peers(program: Program) -> Program:
    trainable = {p.name for p in program.params if p.trainable}
    called = {n.target for n in walk(program.workflow.nodes) if n.op == "llm"}
    edges: dict[str, set[str]] = {name: set() for name in trainable}
    for llm in program.llms:
        if llm.name not in called:
            continue
        group = [u for u in llm.uses if u in trainable]
        for a in group:
            edges[a].update(b for b in group if b != a)
    params = tuple(evolve(p, peers=tuple(sorted(edges.get(p.name, ())))) for p in program.params)
    return program.with_pass("peers", params=params)
