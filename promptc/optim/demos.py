"""The demo optimizer: a search over few-shot demo sets, raced on training rows.

Where demos come from (a `Pool` of `PoolEntry` records, checkpointed):
- **labeled** — free. Where an `llm` node that uses the demos param gives the workflow's
  output and its arguments are workflow inputs, every training row with an expected
  answer is a demo `(inputs, expected answer)` without a model call (DSPy's labeled
  few-shot). Where the arguments are computed, a failing sample's trace gives them.
- **trace** — the node's inputs and output in a trace that scored at least the threshold
  (bootstrapped demos; the only kind an intermediate node can have without a teacher).
- **teacher** — failing samples rerun with the `teacher` model in place of every model;
  the ones it gets right give demos for every node.

Candidate sets (`candidates`): of several sizes up to the param's `max` (and what fits
the model's context window, when known), each drawn so that it covers the output's label
set: entries are grouped by their output (an `enum`'s labels; otherwise the distinct
output values when there are few), the groups are visited round-robin in a random order
and one random entry is taken from each, then the set is shuffled. The current set is
always a candidate, so a search can conclude that nothing beats it — on a task where
demos hurt, none is added because it is there.

The race (`DemoOptimizer.propose`): successive halving. Half of the training rows are
raced on and fixed sets are drawn from demos of the other half (`split_rows`), so every
candidate is scored on the same rows and none on an answer it was shown; every candidate
is run on the first few race rows, the better half goes on to twice as many rows, and so
on until two remain; the better of them is the proposal. How many candidates and rows fit
is planned from the call budget given (`plan`). The proposal then goes through the gate on
the validation rows (promptc.optim.gate), like every other proposal: the race picks on
training rows, validation decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from typing import Any, Awaitable, Callable, Sequence

from attrs import evolve, field, frozen

from promptc.ir import Demo, Param, Program
from promptc.optim.roles import teacher_model, with_model
from promptc.params_view import demo_from_data, demo_to_data
from promptc.runtime.parse import coerce
from promptc.runtime.records import Trace

log = logging.getLogger(__name__)

ORIGINS = ("labeled", "trace", "teacher")
# (candidates, first rows), preferred first: a first cut on 8 rows before more candidates
# (on 4 binary rows a candidate's mean has a standard error of 0.25: the cut is a coin toss)
PLANS = ((16, 8), (12, 8), (8, 8), (12, 6), (8, 6), (16, 4), (12, 4), (8, 4), (8, 3), (8, 2), (6, 2), (4, 2), (3, 2))
UNBOUNDED_RACE_CALLS = 160  # a race's calls when the run has no call budget
DEMO_SHARE_OF_CONTEXT = 0.5  # demos may fill at most this share of the model's context


# -- the pool -------------------------------------------------------------------------
@frozen
class PoolEntry:
    demo: Demo
    origin: str  # one of ORIGINS
    row: int | None = None  # the training row it came from (never raced on)

    def to_data(self) -> dict:
        return {"demo": demo_to_data(self.demo), "origin": self.origin, "row": self.row}

    @classmethod
    def from_data(cls, d: dict) -> "PoolEntry":
        return cls(demo_from_data(d["demo"]), d.get("origin", "trace"), d.get("row"))


def key(d: Demo) -> str:
    return json.dumps([list(p) for p in d.inputs], sort_keys=True, default=str)


def output_key(d: Demo) -> str:
    return json.dumps(d.output, sort_keys=True, default=str)


@frozen
class Pool:
    """Demo candidates by input key; labeled and teacher entries win over trace ones."""

    entries: tuple[PoolEntry, ...] = ()

    def add(self, new: Sequence[PoolEntry]) -> "Pool":
        index = {key(e.demo): i for i, e in enumerate(self.entries)}
        out = list(self.entries)
        for e in new:
            k = key(e.demo)
            if k not in index:
                index[k] = len(out)
                out.append(e)
            elif out[index[k]].origin == "trace" and e.origin != "trace":
                out[index[k]] = e
        return Pool(tuple(out))

    def rows(self, demos: Sequence[Demo]) -> set[int]:
        """The training rows the given demos came from."""
        by_key = {key(e.demo): e.row for e in self.entries}
        return {r for d in demos if (r := by_key.get(key(d))) is not None}

    def to_data(self) -> list:
        return [e.to_data() for e in self.entries]

    @classmethod
    def from_data(cls, data: Sequence[dict]) -> "Pool":
        return cls(tuple(PoolEntry.from_data(d) for d in data))


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


def demos_from_trace(program: Program, param: str, trace: Trace) -> list[Demo]:
    out = []
    for node in demo_nodes(program, param):
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
    teacher_run: Callable[[Program, list[dict]], Awaitable[tuple[list[Trace], list[float]]]] | None = None,
) -> Pool:
    """`pool` grown from one scored batch (`rows` are the batch's training indices):
    successful traces, failing samples with their expected answers, and the teacher's
    successes on the failing samples (when `teacher_run` is given and a teacher declared)."""
    new: list[PoolEntry] = []
    answer = program.train.answer if program.train else None
    failing = []
    for r, sample, t, s in zip(rows, batch, traces, scores):
        if s >= threshold:
            new += [PoolEntry(d, "trace", r) for d in demos_from_trace(program, param, t)]
        else:
            failing.append((r, sample))
            expected = sample.get(answer) if answer else None
            new += [PoolEntry(d, "labeled", r) for d in labeled_demos(program, param, t, expected)]
    teacher = teacher_model(program)
    if teacher and failing and teacher_run is not None:
        tprog = with_model(program, teacher)
        ttraces, tscores = await teacher_run(tprog, [s for _, s in failing])
        for (r, _), t, s in zip(failing, ttraces, tscores):
            if s >= threshold:
                new += [PoolEntry(d, "teacher", r) for d in demos_from_trace(tprog, param, t)]
    return pool.add(new)


# -- candidate sets -----------------------------------------------------------------------
POOL_MAX = 512  # demos a nearest-neighbour pool keeps (the artifact carries them)


@frozen
class Choice:
    """A value of a demos param: a fixed list, or (`nearest` > 0) a pool from which each
    call shows its `nearest` most similar demos (promptc.runtime.nearest)."""

    demos: tuple[Demo, ...] = ()
    nearest: int = 0

    def signature(self) -> tuple:
        return (self.nearest, tuple(key(d) for d in self.demos))

    def key(self) -> str:
        """The signature as one string (checkpointable)."""
        return json.dumps([self.nearest, [key(d) for d in self.demos]])

    def summary(self) -> str:
        if self.nearest:
            return f"the {self.nearest} nearest of a pool of {len(self.demos)} demos, per call"
        return summarize(self.demos)

    def of(self, param: Param) -> Param:
        return evolve(param, demos=self.demos, nearest=self.nearest)

    @classmethod
    def current(cls, param: Param) -> "Choice":
        return cls(tuple(param.demos), param.nearest)


def approx_tokens(d: Demo) -> int:
    """A conservative token estimate of one demo's two chat turns (3 characters a token)."""
    return (len(json.dumps(dict(d.inputs), default=str)) + len(json.dumps(d.output, default=str))) // 3 + 12


def fitting_size(entries: Sequence[PoolEntry], k: int, context: int | None) -> int:
    """The largest size <= k whose longest demos fit the demos' share of `context`."""
    if not context:
        return k
    sizes = sorted((approx_tokens(e.demo) for e in entries), reverse=True)
    room, n = context * DEMO_SHARE_OF_CONTEXT, 0
    for t in sizes[:k]:
        if room < t:
            break
        room -= t
        n += 1
    return max(1, n) if entries else 0


def sizes_for(k: int, labels: int) -> tuple[int, ...]:
    """Several set sizes up to k: k itself, one per label, and about half of k."""
    options = {k, labels if 0 < labels <= k else k, max(1, (k + 1) // 2)}
    return tuple(sorted(options, reverse=True))


def draw(entries: Sequence[PoolEntry], size: int, labels: Sequence[str], rng: random.Random) -> tuple[Demo, ...]:
    """One set of `size` demos covering the output groups round-robin, in random order."""
    groups: dict[str, list[PoolEntry]] = {}
    for e in entries:
        groups.setdefault(output_key(e.demo), []).append(e)
    if not labels and len(groups) > 2 * size:  # free-form outputs: no groups to balance
        groups = {"": list(entries)}
    order = sorted(groups)
    rng.shuffle(order)
    bags = {g: rng.sample(groups[g], len(groups[g])) for g in order}
    chosen: list[PoolEntry] = []
    while len(chosen) < size and any(bags.values()):
        for g in order:
            if bags[g] and len(chosen) < size:
                chosen.append(bags[g].pop())
    rng.shuffle(chosen)
    return tuple(e.demo for e in chosen)


def candidates(
    pool: Pool, current: Choice, k: int, labels: Sequence[str], count: int, rng: random.Random,
    context: int | None = None, draw_from: Pool | None = None, exclude: set[str] = frozenset(),
) -> list[Choice]:
    """`count` distinct candidates: the current value first (and no demos at all when the
    current value has some), the nearest-neighbour pool at `k` and about half of `k` when
    the pool holds at least twice `k` demos, then fixed sets drawn in several sizes (from
    `draw_from`, default the whole pool). Values whose `key()` is in `exclude` (refused by
    the gate since the incumbent last changed) are not offered again."""
    out: list[Choice] = [current]
    seen = {current.signature()}

    def offer(c: Choice) -> None:
        if c.signature() not in seen and c.key() not in exclude and len(out) < count:
            seen.add(c.signature())
            out.append(c)

    if current.demos:
        offer(Choice())
    entries = list(pool.entries)
    if not entries:
        return out
    k = fitting_size(entries, k, context)
    if len(entries) >= 2 * k:
        everything = tuple(e.demo for e in entries[:POOL_MAX])
        for n in sorted({k, max(1, (k + 1) // 2)}, reverse=True):
            offer(Choice(everything, n))
    sizes = sizes_for(k, len(labels))
    fixed = list((draw_from or pool).entries)
    attempts = 0
    while fixed and len(out) < count and attempts < 20 * count:
        size = sizes[attempts % len(sizes)]
        attempts += 1
        cand = draw(fixed, size, labels, rng)
        if cand:
            offer(Choice(cand))
    return out


# -- the race -------------------------------------------------------------------------------
MIN_PAIRED_ROWS = 8


def split_rows(order: Sequence[int], pool: Pool) -> tuple[list[int], Pool | None]:
    """Race rows and the pool fixed sets are drawn from, so that every candidate is scored
    on the same rows (a paired race: the rows' difficulty cancels out of the comparison).
    The first half of `order` is raced on; fixed sets draw only demos from other rows (or
    from no row). A nearest-neighbour pool keeps every demo (a row never sees its own).
    With too few rows for two halves, the race uses every row and each fixed set skips
    its own (None)."""
    half = len(order) // 2
    if half < MIN_PAIRED_ROWS:
        return list(order), None
    race_rows = list(order[:half])
    taken = set(race_rows)
    rest = Pool(tuple(e for e in pool.entries if e.row is None or e.row not in taken))
    return race_rows, rest

def halving_cost(count: int, first: int, rows: int, calls_per_row: float = 1.0) -> float:
    """Calls a race of `count` candidates costs, starting at `first` rows each."""
    alive, target, done, cost = count, min(first, rows), 0, 0.0
    while True:
        cost += alive * (target - done) * calls_per_row
        if alive <= 2 or target >= rows:
            return cost
        alive, done, target = math.ceil(alive / 2), target, min(2 * target, rows)


def plan(budget: float | None, rows: int, calls_per_row: float = 1.0) -> tuple[int, int] | None:
    """(candidates, first rows) for a race that fits `budget` calls (None: no call budget,
    `UNBOUNDED_RACE_CALLS`), or None if none does."""
    if budget is None:
        budget = UNBOUNDED_RACE_CALLS
    for count, first in PLANS:
        if first <= rows and halving_cost(count, first, rows, calls_per_row) <= budget:
            return count, first
    return None


@frozen
class Entrant:
    choice: Choice
    rows: tuple[int, ...]  # training rows it may be scored on, in race order
    scores: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@frozen
class RaceResult:
    winner: Choice
    is_current: bool
    entrants: int
    calls_rows: int  # (candidate, row) evaluations run
    table: tuple[tuple[str, float, int], ...] = field(factory=tuple)  # (what, mean, rows) per entrant, final standing


Evaluate = Callable[[Choice, list[int]], Awaitable[list[float]]]


async def race(
    sets: Sequence[Choice], pool: Pool, order: Sequence[int], first: int, evaluate: Evaluate,
) -> RaceResult:
    """Successive halving over `sets` (index 0 is the current value) on training rows taken
    in `order`, each fixed set skipping the rows its demos came from (a nearest-neighbour
    pool never shows a row its own demo: see promptc.runtime.nearest)."""
    entrants = []
    for s in sets:
        own = set() if s.nearest else pool.rows(s.demos)
        entrants.append(Entrant(s, tuple(r for r in order if r not in own)))
    rows_max = min(len(e.rows) for e in entrants)
    alive = list(range(len(entrants)))
    target, evaluated = min(first, rows_max), 0
    while True:
        async def extend(i: int) -> None:
            e = entrants[i]
            new_rows = list(e.rows[len(e.scores):target])
            if new_rows:
                got = await evaluate(e.choice, new_rows)
                entrants[i] = evolve(e, scores=e.scores + tuple(got))

        await asyncio.gather(*(extend(i) for i in alive))
        evaluated = sum(len(e.scores) for e in entrants)
        # best mean first; ties: the current set, then fewer demos
        alive.sort(key=lambda i: (-entrants[i].mean, i != 0, entrants[i].choice.nearest or len(entrants[i].choice.demos), i))
        if len(alive) <= 2 or target >= rows_max:
            break
        alive = alive[: math.ceil(len(alive) / 2)]
        target = min(2 * target, rows_max)
    best = alive[0]
    standing = sorted(range(len(entrants)), key=lambda i: (-len(entrants[i].scores), -entrants[i].mean))
    table = tuple((_label(entrants[i].choice), round(entrants[i].mean, 4), len(entrants[i].scores)) for i in standing)
    return RaceResult(entrants[best].choice, best == 0, len(entrants), evaluated, table)


def _label(c: Choice) -> str:
    return f"nearest {c.nearest}" if c.nearest else f"{len(c.demos)} fixed"


def summarize(demos: tuple[Demo, ...]) -> str:
    return "\n".join(
        f"{json.dumps(dict(d.inputs), default=str)[:200]} -> {json.dumps(d.output, default=str)[:100]}" for d in demos
    ) or "(no demos)"


__all__: list[Any] = [
    "Choice", "Pool", "PoolEntry", "RaceResult", "candidates", "collect", "demos_from_trace", "draw", "free_labeled",
    "halving_cost", "labeled_demos", "output_labels", "plan", "race", "summarize", "teacher_model", "with_model",
]
