"""Where few-shot demos come from: a `Pool` per `demos` param, grown from scored batches.

Sources (each a `PoolEntry` origin):
- **labeled** — free. Where an `llm` node that uses the demos param gives the workflow's
  output and its arguments are workflow inputs, every training row with an expected
  answer is a demo `(inputs, expected answer)` without a model call (DSPy's labeled
  few-shot; `free_labeled`). Where the arguments are computed, a failing sample's trace
  gives them.
- **trace** — the node's inputs and output in a trace that scored at least the threshold
  (bootstrapped demos; the only kind an intermediate node can have without a teacher).
- **teacher** — failing samples rerun with the `teacher` model in place of every model;
  the ones it gets right give demos for every node.
- **support** — a failing sample's credited step whose value hit the row's field
  (`train { supports VALUE in FIELD }`, promptc.optim.credit): a success for that step
  alone (the query that retrieved a gold passage), even when the final answer is wrong.

`collect` grows one param's pool from one scored batch; `observe` grows every pool of a
run from it (the trainer's prompt rounds and the demo optimizer's bootstrap both score
minibatches). The pools are part of the training state (promptc.optim.state); the search
over them is promptc.optim.race, driven by the demo optimizer.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Sequence

from attrs import frozen

from promptc.ir import Demo, Program
from promptc.optim.credit import credited, successes
from promptc.optim.roles import teacher_model, with_model
from promptc.runtime.parse import coerce
from promptc.runtime.records import Trace

ORIGINS = ("labeled", "trace", "teacher", "support")

Run = Callable[[Program, list[dict]], Awaitable[tuple[list[Trace], list[float]]]]  # traces and scores of rows


# -- the pool -------------------------------------------------------------------------
@frozen
class PoolEntry:
    demo: Demo
    origin: str  # one of ORIGINS
    row: int | None = None  # the training row it came from (never raced on)


def key(d: Demo) -> str:
    return json.dumps([list(p) for p in d.inputs], sort_keys=True, default=str)


def output_key(d: Demo) -> str:
    return json.dumps(d.output, sort_keys=True, default=str)


@frozen
class Pool:
    """Demo candidates by input key; labeled and teacher entries win over trace and
    support ones."""

    entries: tuple[PoolEntry, ...] = ()

    def add(self, new: Sequence[PoolEntry]) -> "Pool":
        index = {key(e.demo): i for i, e in enumerate(self.entries)}
        out = list(self.entries)
        for e in new:
            k = key(e.demo)
            if k not in index:
                index[k] = len(out)
                out.append(e)
            elif out[index[k]].origin in ("trace", "support") and e.origin not in ("trace", "support"):
                out[index[k]] = e
        return Pool(tuple(out))

    def rows(self, demos: Sequence[Demo]) -> set[int]:
        """The training rows the given demos came from."""
        by_key = {key(e.demo): e.row for e in self.entries}
        return {r for d in demos if (r := by_key.get(key(d))) is not None}


# -- where demos come from --------------------------------------------------------------
def demo_nodes(program: Program, param: str) -> list:
    llms = {l.name for l in program.llms if l.demos == param}
    return [n for n in program.nodes if n.op == "llm" and n.target in llms]


def output_labels(program: Program, param: str) -> tuple[str, ...]:
    """The enum labels the demos' outputs take, when every node using `param` returns one enum."""
    labels: set[tuple[str, ...]] = set()
    for node in demo_nodes(program, param):
        t = program.llm(node.target).returns
        if t.kind != "enum":
            return ()
        labels.add(t.labels)
    return next(iter(labels)) if len(labels) == 1 else ()


def node_inputs(program: Program, node, trace: Trace) -> tuple[tuple[str, Any], ...] | None:
    """The `llm` node's arguments in a trace, by the llm's parameter names (None if unknown)."""
    llm = program.llm(node.target)
    try:
        return tuple((arg, trace.value(v)) for (arg, _), v in zip(llm.params, node.args))
    except KeyError:
        return None


def demos_from_trace(program: Program, param: str, trace: Trace, only: set[str] | None = None) -> list[Demo]:
    """The demos the nodes using `param` give in `trace` (their inputs and output), or
    only those of the nodes named in `only`."""
    out = []
    for node in demo_nodes(program, param):
        if only is not None and node.name not in only:
            continue
        try:
            rec = trace.record(node.name)
        except KeyError:
            continue
        if not rec.executed or rec.error or rec.value is None:
            continue
        inputs = node_inputs(program, node, trace)
        if inputs is not None:
            out.append(Demo(inputs=inputs, output=rec.value))
    return out


def labeled_output(program: Program, node) -> Callable[[Any], Any] | None:
    """How the dataset's expected answer becomes `node`'s output, when the `llm` node gives
    the workflow's output: itself, or as the one field of the record it returns (`return
    counted.answer` where `count` returns `{answer: int}`; the output is None where the
    answer does not convert to the field's type). None for any other node."""
    out = program.workflow.output
    if node.name == out:
        return lambda expected: expected
    last = program.node(out)
    fields = program.llm(node.target).returns.fields
    if last.op == "field" and last.args == (node.name,) and len(fields) == 1 and fields[0][0] == last.target:
        name, t = fields[0]

        def as_record(expected: Any) -> Any:
            value, error = coerce(expected, t)  # the dataset's "11" as the field's int
            return None if error else {name: value}

        return as_record
    return None


def labeled_demos(program: Program, param: str, trace: Trace, expected: Any) -> list[Demo]:
    """Demos whose output is the dataset's expected answer, from a trace (the node's
    computed arguments), for an `llm` node that gives the workflow's output (`labeled_output`)."""
    if expected is None:
        return []
    out = []
    for node in demo_nodes(program, param):
        to_output = labeled_output(program, node)
        if to_output is None:
            continue
        inputs = node_inputs(program, node, trace)
        output = to_output(expected)
        if inputs is not None and output is not None and all(v is not None for _, v in inputs):
            out.append(Demo(inputs=inputs, output=output))
    return out


def free_labeled(program: Program, param: str, train: Sequence[dict]) -> list[PoolEntry]:
    """Labeled demos that cost no call: the output node's arguments are workflow inputs."""
    answer = program.train.answer if program.train else None
    if not answer:
        return []
    inputs_by_value = {n.name: n.target for n in program.nodes if n.op == "input"}
    out = []
    for node in demo_nodes(program, param):
        to_output = labeled_output(program, node)
        if to_output is None or not all(a in inputs_by_value for a in node.args):
            continue
        llm = program.llm(node.target)
        for i, row in enumerate(train):
            if row.get(answer) is None or any(inputs_by_value[a] not in row for a in node.args):
                continue
            output = to_output(row[answer])
            if output is None:
                continue
            inputs = tuple((arg, row[inputs_by_value[v]]) for (arg, _), v in zip(llm.params, node.args))
            out.append(PoolEntry(Demo(inputs=inputs, output=output), "labeled", i))
    return out


async def collect(
    program: Program,
    param: str,
    rows: Sequence[int],
    batch: Sequence[dict],
    traces: Sequence[Trace],
    scores: Sequence[float],
    pool: Pool,
    *,
    threshold: float = 1.0,
    teacher_run: Run | None = None,
) -> Pool:
    """`pool` grown from one scored batch (`rows` are the batch's training indices):
    successful traces, failing samples with their expected answers, the credited steps of
    failing samples that hit the row's field (`supports`), and the teacher's successes on
    the failing samples (when `teacher_run` is given and a teacher declared)."""
    new: list[PoolEntry] = []
    answer = program.train.answer if program.train else None
    credit = credited(program)
    failing = []
    for r, sample, t, s in zip(rows, batch, traces, scores):
        if s >= threshold:
            new += [PoolEntry(d, "trace", r) for d in demos_from_trace(program, param, t)]
        else:
            failing.append((r, sample))
            expected = sample.get(answer) if answer else None
            new += [PoolEntry(d, "labeled", r) for d in labeled_demos(program, param, t, expected)]
            if credit:
                won = successes(credit, t, sample)
                new += [PoolEntry(d, "support", r) for d in demos_from_trace(program, param, t, only=won)] if won else []
    teacher = teacher_model(program)
    if teacher and failing and teacher_run is not None:
        tprog = with_model(program, teacher)
        ttraces, tscores = await teacher_run(tprog, [s for _, s in failing])
        for (r, _), t, s in zip(failing, ttraces, tscores):
            if s >= threshold:
                new += [PoolEntry(d, "teacher", r) for d in demos_from_trace(tprog, param, t)]
    return pool.add(new)


async def observe(
    pools: dict[str, Pool],
    program: Program,
    rows: Sequence[int],
    batch: Sequence[dict],
    traces: Sequence[Trace],
    scores: Sequence[float],
    *,
    threshold: float,
    run: Run,
) -> dict[str, Pool]:
    """Every pool grown from one scored batch (`collect` per param, in order; `run` scores
    the teacher's reruns)."""
    out = dict(pools)
    for name in pools:
        out[name] = await collect(program, name, rows, batch, traces, scores, out[name], threshold=threshold, teacher_run=run)
    return out


__all__: list[Any] = [
    "ORIGINS", "Pool", "PoolEntry", "collect", "demo_nodes", "demos_from_trace", "free_labeled", "key", "labeled_demos",
    "observe", "output_key", "output_labels", "teacher_model", "with_model",
]
