"""The demo optimizer: few-shot examples bootstrapped from successful traces.

For a trainable `demos` param, every `llm` node whose definition uses it is a source of
examples: in a trace that scored at least the threshold, the node's inputs (the `llm`'s
arguments at that node) and its output make one `Demo`. Examples the current program gets
wrong are worth most: where the node produces the workflow's output, a failing sample with
its expected answer is itself a correct demo (`labeled_demos`); when a `teacher` model is given (`train { teacher ... }`), the
failing samples are rerun with the teacher in place of every model, and the ones the
teacher gets right are added as "hard" demos. The pool of candidates lives across steps
(it is checkpointed); `propose_set` picks a new set of at most `max_demos` — hard ones
first, then the current demos, then the other successes — and the trainer keeps it only
if the validation score improves.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

from attrs import evolve

from promptc.ir import Demo, Param, Program
from promptc.optim.backward import resolve_model, task_model
from promptc.optim.checkpoint import demo_from_data, demo_to_data
from promptc.runtime.records import Trace

log = logging.getLogger(__name__)


def teacher_model(program: Program) -> str | None:
    """The teacher model string, or None when there is none distinct from the task model."""
    spec = program.train
    teacher = resolve_model(program, spec.teacher if spec else None)
    if not teacher or teacher == task_model(program):
        return None
    return teacher


def with_model(program: Program, model: str) -> Program:
    """`program` with every model declaration resolved to `model` (for teacher runs); the
    declarations' own endpoints are dropped: the engine routes `model` (`use_models`)."""
    return evolve(program, models=tuple(evolve(m, default=model, env=None, options=()) for m in program.models))


def demo_nodes(program: Program, param: str) -> list:
    llms = {l.name for l in program.llms if l.demos == param}
    return [n for n in program.nodes if n.op == "llm" and n.target in llms]


def demos_from_trace(program: Program, param: str, trace: Trace) -> list[Demo]:
    out = []
    for node in demo_nodes(program, param):
        try:
            rec = trace.record(node.name)
        except KeyError:
            continue
        if not rec.executed or rec.error or rec.value is None:
            continue
        llm = program.llm(node.target)
        try:
            inputs = tuple((arg, trace.value(v)) for (arg, _), v in zip(llm.params, node.args))
        except KeyError:
            continue
        out.append(Demo(inputs=inputs, output=rec.value))
    return out


def labeled_demos(program: Program, param: str, trace: Trace, expected: Any) -> list[Demo]:
    """Demos whose output is the dataset's expected answer.

    Only for an `llm` node that produces the workflow's output itself: there the expected
    answer is exactly what the node should have said, so a failing sample becomes a
    correct example (DSPy's labeled few-shot does the same). Intermediate nodes have no
    label and get demos from successful traces or the teacher only.
    """
    if expected is None:
        return []
    out = []
    for node in demo_nodes(program, param):
        if node.name != program.workflow.output:
            continue
        llm = program.llm(node.target)
        try:
            inputs = tuple((arg, trace.value(v)) for (arg, _), v in zip(llm.params, node.args))
        except KeyError:
            continue
        if any(v is None for _, v in inputs):
            continue
        out.append(Demo(inputs=inputs, output=expected))
    return out


def _key(d: Demo) -> str:
    return json.dumps([list(p) for p in d.inputs], sort_keys=True, default=str)


def add_to_pool(pool: list[dict], demos: list[Demo], hard: bool) -> None:
    """Add demos to a pool (list of {"demo": data, "hard": bool}); a hard one upgrades a duplicate."""
    index = {_key(demo_from_data(e["demo"])): e for e in pool}
    for d in demos:
        k = _key(d)
        if k in index:
            index[k]["hard"] = index[k]["hard"] or hard
            continue
        entry = {"demo": demo_to_data(d), "hard": hard}
        pool.append(entry)
        index[k] = entry


async def collect(
    program: Program,
    param: str,
    batch: list[dict],
    traces: list[Trace],
    scores: list[float],
    engine,
    pool: list[dict],
    *,
    threshold: float = 1.0,
    forward=None,
    score=None,
    concurrency: int = 8,
    phase: str = "demos",
) -> int:
    """Grow `pool` from one minibatch; returns the number of teacher calls' samples run."""
    for t, s in zip(traces, scores):
        if s >= threshold:
            add_to_pool(pool, demos_from_trace(program, param, t), hard=False)
    failing = [i for i, s in enumerate(scores) if s < threshold]
    answer = program.train.answer if program.train else None
    for i in failing:
        add_to_pool(pool, labeled_demos(program, param, traces[i], batch[i].get(answer) if answer else None), hard=True)
    teacher = teacher_model(program)
    if not teacher or not failing or forward is None or score is None:
        return 0
    tprog = with_model(program, teacher)
    sub = [batch[i] for i in failing]
    ttraces = await forward(tprog, sub, engine, concurrency=concurrency, phase=phase)
    tscores = score(tprog, ttraces, sub)
    for t, s in zip(ttraces, tscores):
        if s >= threshold:
            add_to_pool(pool, demos_from_trace(tprog, param, t), hard=True)
    return len(sub)


def propose_set(param: Param, pool: list[dict], rng: random.Random) -> tuple[Demo, ...] | None:
    """A new demo set for `param` from the pool, or None when it would not change anything."""
    k = param.max_demos or 4
    current = {_key(d) for d in param.demos}
    hard = [demo_from_data(e["demo"]) for e in pool if e["hard"]]
    easy = [demo_from_data(e["demo"]) for e in pool if not e["hard"]]
    hard = [d for d in hard if _key(d) not in current]
    easy = [d for d in easy if _key(d) not in current]
    rng.shuffle(easy)
    ranked = hard[::-1] + list(param.demos) + easy  # newest hard examples first
    chosen: list[Demo] = []
    seen: set[str] = set()
    for d in ranked:
        key = _key(d)
        if key not in seen:
            seen.add(key)
            chosen.append(d)
        if len(chosen) == k:
            break
    if {_key(d) for d in chosen} == current:
        return None
    return tuple(chosen)


def summarize(demos: tuple[Demo, ...]) -> str:
    return "\n".join(f"{json.dumps(dict(d.inputs), default=str)[:200]} -> {json.dumps(d.output, default=str)[:100]}" for d in demos)


__all__: list[Any] = ["collect", "propose_set", "teacher_model", "with_model", "demos_from_trace", "labeled_demos", "add_to_pool"]
