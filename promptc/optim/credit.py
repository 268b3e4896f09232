"""Credit for intermediate steps, where a training row gives it (`train { supports ... }`).

    train multihop { metric f1_explained; supports found in supporting_titles }

A row of HotpotQA carries more than the answer: the titles of the passages that hold the
facts. `supports found in supporting_titles` says that the workflow's value `found` (every
copy of it: `found@hop#0`, `found@hop#1`) should hit the row's `supporting_titles`. The
`llm` step that computed a copy gets the credit for it: the nearest `llm` nodes upstream
of the value, through functional and data nodes only (`retrieve(q, corpus, 1)` is credited
to the `make_query` call that wrote `q`, at the same hop). A step whose value hit is a
success for that step, whatever the workflow's final score (promptc.optim.demos takes its
demos from it); a demo race of a credited step's param compares the recall of the gold
items its calls found (`race_scores`; promptc.optim.optimizers), running only the part
of the workflow that recall needs (`race_program`).

A value hits when one of its items (a list's elements, or the value itself) is one of the
field's items (a list's elements, or the field itself), compared without case and outer
spaces, or starts with it followed by ':' — a passage "Title: text" as
`std.retrieval.passages` makes hits the title "Title"; a record with a `title` field is
compared by that field. No model call.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from attrs import evolve

from promptc.ir import Node, Program, Support, base_name
from promptc.runtime.records import Trace

__all__ = ["Credit", "credited", "field_check", "hits", "matched", "race_program", "race_scores", "successes", "uncredited"]

# node -> the supports whose value it computed, with the value's node
Credit = dict[str, tuple[tuple[Support, str], ...]]


def credited(program: Program) -> Credit:
    """Each credited `llm` node, with the (support, value node) pairs it gets credit for."""
    spec = program.train
    if spec is None or not spec.supports:
        return {}
    by_name = {n.name: n for n in program.nodes}
    pos = {n.name: i for i, n in enumerate(program.nodes)}
    out: dict[str, list[tuple[Support, str]]] = {}
    for s in spec.supports:
        wanted = set(s.nodes)
        for n in program.nodes:
            if base_name(n.name) in wanted:
                for step in _nearest_llms(n, by_name):
                    out.setdefault(step, []).append((s, n.name))
    return {k: tuple(out[k]) for k in sorted(out, key=pos.__getitem__)}


def uncredited(program: Program) -> list[str]:
    """The `supports` values no `llm` step computes (an input's function, or a value the
    program does not keep): they give no credit."""
    spec = program.train
    steps = credited(program)
    given = {s.value for pairs in steps.values() for s, _ in pairs}
    return [s.value for s in (spec.supports if spec else ()) if s.value not in given]


def _nearest_llms(value: Node, by_name: Mapping[str, Node]) -> list[str]:
    """The `llm` nodes `value` was computed from without passing another `llm` (the value
    itself when it is an llm node's). A select's condition and a node's guard are control,
    not data: they give no credit."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [value.name]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        n = by_name.get(name)
        if n is None:
            continue
        if n.op == "llm":
            found.append(n.name)
            continue
        stack.extend(n.args[1:] if n.op == "select" else n.args)
    return found


def _items(x: Any) -> list[str]:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return [i for e in x for i in _items(e)]
    if isinstance(x, Mapping):
        return _items(x["title"]) if "title" in x else []
    return [" ".join(str(x).split()).casefold()]


def matched(value: Any, gold: Any) -> set[str]:
    """The items of `gold` (normalized) that `value` hits (the rule of the module doc)."""
    golds = [g for g in _items(gold) if g]
    out = set()
    for item in _items(value):
        for g in golds:
            if item == g or (item.startswith(g) and item[len(g):].lstrip().startswith(":")):
                out.add(g)
    return out


def hits(value: Any, gold: Any) -> bool:
    """Whether `value` hits `gold` (the rule of the module doc)."""
    return bool(matched(value, gold))


def successes(credit: Credit, trace: Trace, row: Mapping[str, Any]) -> set[str]:
    """The credited `llm` nodes of `trace` whose value hit the row's field."""
    out = set()
    for step, pairs in credit.items():
        for s, value_node in pairs:
            if s.field not in row:
                continue
            try:
                rec = trace.record(value_node)
            except KeyError:
                continue
            if rec.executed and rec.error is None and hits(rec.value, row[s.field]):
                out.add(step)
                break
    return out


def race_scores(
    program: Program, nodes: Sequence[str], traces: Sequence[Trace], rows: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
) -> list[float]:
    """The scores a demo race of the param used by `nodes` compares. Where some of these
    nodes are credited steps, a row scores the share of its gold items (the `supports`
    fields' items) that their values hit, over all their calls: the recall of the gold
    passages, so two hops that find the same passage score half, and an agent's step that
    finishes instead of searching costs nothing. Where none is credited, and on a row
    without the field, the workflow's score."""
    credit = credited(program)
    mine = [n for n in nodes if n in credit]
    if not mine:
        return list(scores)
    out = []
    for t, row, score in zip(traces, rows, scores):
        gold: set[tuple[str, str]] = set()
        found: set[tuple[str, str]] = set()
        for n in mine:
            for s, value_node in credit[n]:
                if s.field not in row:
                    continue
                gold |= {(s.field, g) for g in _items(row[s.field]) if g}
                rec = _record(t, value_node)
                if rec is not None and rec.executed and rec.error is None:
                    found |= {(s.field, g) for g in matched(rec.value, row[s.field])}
        out.append(len(found) / len(gold) if gold else float(score))
    return out


def race_program(program: Program, nodes: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> tuple[Program, float] | None:
    """What a race of the param used by `nodes` needs to run, when `race_scores` will score
    every row by the credit alone: `program` cut to the credited values of these nodes and
    what they are computed from (multihop's query race stops after the second retrieval:
    3 of its 5 calls a row), with the share of the `llm` calls it keeps. None where the
    whole workflow must run: no node is credited, a row lacks a `supports` field (it is
    scored by the metric), or the metric is an llm judge."""
    credit = credited(program)
    mine = [n for n in nodes if n in credit]
    spec = program.train
    if not mine or spec is None or any(l.name == spec.metric for l in program.llms):
        return None
    if any(s.field not in r for r in rows for n in mine for s, _ in credit[n]):
        return None
    targets = {v for n in mine for _, v in credit[n]}
    live = set(targets)
    for n in reversed(program.nodes):
        if n.name in live:
            live.update(n.args)
            if n.guard is not None:
                live.add(n.guard)
    kept = tuple(n for n in program.nodes if n.name in live or n.op == "input")
    output = [n.name for n in kept if n.name in targets][-1]
    cut = evolve(program, workflow=evolve(program.workflow, nodes=kept, output=output), backward=())
    llms = sum(n.op == "llm" for n in program.nodes)
    return cut, (sum(n.op == "llm" for n in kept) / llms if llms else 1.0)


def _record(trace: Trace, node: str):
    try:
        return trace.record(node)
    except KeyError:
        return None


def field_check(program: Program, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """An error text when a `supports` field is in none of the training rows (a misspelt
    field would silently give no credit), else None. A row without it gets no credit."""
    spec = program.train
    if spec is None or not rows:
        return None
    for s in spec.supports:
        if not any(s.field in r for r in rows):
            has = ", ".join(sorted({k for r in rows[:20] for k in r})) or "none"
            return (f"train {{ supports {s.value} in {s.field} }}: no training row has the field "
                    f"'{s.field}' (the rows have {has})")
    return None
