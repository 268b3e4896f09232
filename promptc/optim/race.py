"""The demo search: candidate demo sets, and the race that picks one on training rows.

Candidate sets (`candidates`): of several sizes up to the param's `max` (and what fits
the model's context window, when known), each drawn so that it covers the output's label
set: entries are grouped by their output (an `enum`'s labels; otherwise the distinct
output values when there are few), the groups are visited round-robin in a random order
and one random entry is taken from each, then the set is shuffled. The current set is
always a candidate, so a search can conclude that nothing beats it — on a task where
demos hurt, none is added because it is there.

The race: successive halving. Half of the training rows are raced on and fixed sets are
drawn from demos of the other half (`split_rows`), so every candidate is scored on the
same rows and none on an answer it was shown; every candidate is run on the first few
race rows, the better half goes on to twice as many rows, and so on until two remain; the
better of them is the proposal — unless the two are within noise of each other (the
gate's paired test), neither is the current value and only one is a nearest-neighbour
pool: then the pool, a prior checked on other tasks (`final_pick`), so that one row does
not decide. How many candidates and rows fit is planned from the call budget given
(`plan`). The proposal then goes through the gate on the validation rows
(promptc.optim.gate), like every other proposal: the race picks on training rows,
validation decides. The demo optimizer (promptc.optim.optimizers.DemoOptimizer) drives
it; where the demos come from is promptc.optim.demos.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from typing import Any, Awaitable, Callable, Sequence

from attrs import evolve, field, frozen

from promptc.ir import Demo, Param
from promptc.optim import gate
from promptc.optim.demos import Pool, PoolEntry, key, output_key

# (candidates, first rows), preferred first: a first cut on 8 rows before more candidates
# (on 4 binary rows a candidate's mean has a standard error of 0.25: the cut is a coin toss)
PLANS = ((16, 8), (12, 8), (8, 8), (12, 6), (8, 6), (16, 4), (12, 4), (8, 4), (8, 3), (8, 2), (6, 2), (4, 2), (3, 2))
UNBOUNDED_RACE_CALLS = 160  # a race's calls when the run has no call budget
DEMO_SHARE_OF_CONTEXT = 0.5  # demos may fill at most this share of the model's context


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
    decided_by: str = "mean"  # how the last two were told apart: one of history.DECISIONS (`final_pick`)


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
    best, decided_by = final_pick(entrants, alive)
    standing = sorted(range(len(entrants)), key=lambda i: (-len(entrants[i].scores), -entrants[i].mean))
    table = tuple((_label(entrants[i].choice), round(entrants[i].mean, 4), len(entrants[i].scores)) for i in standing)
    return RaceResult(entrants[best].choice, best == 0, len(entrants), evaluated, table, decided_by)


def paired(a: Entrant, b: Entrant) -> tuple[list[float], list[float]]:
    """The two entrants' scores on the rows both were scored on, in race order."""
    b_on = dict(zip(b.rows, b.scores))
    common = [(s, b_on[r]) for r, s in zip(a.rows, a.scores) if r in b_on]
    return [x for x, _ in common], [y for _, y in common]


def within_noise(a: Entrant, b: Entrant) -> bool:
    """Neither entrant beats the other by the gate's paired test on their common rows."""
    sa, sb = paired(a, b)
    return not gate.compare(sb, sa).accepted and not gate.compare(sa, sb).accepted


def final_pick(entrants: Sequence[Entrant], alive: Sequence[int]) -> tuple[int, str]:
    """The winner among the last entrants (`alive`, best mean first) and how it was decided.

    When the last two are challengers (neither is the current value, which keeps winning
    ties: a search may conclude that nothing beats it), they are within noise of each
    other (the gate's paired test, either way) and exactly one of them is a
    nearest-neighbour pool, the pool wins: a prior, not the one or two rows between
    their means. It was checked on tasks other than the ones it decides
    (bench/demo_prior.py; docs/training.md, "The final choice"): on held-out BBH and
    HotpotQA rows a pool was ahead of a fixed set in 8 of 16 pairs and behind in 2, with
    a mean difference of about zero — a tie-breaker that costs nothing in expectation.
    Otherwise the better mean wins (ties: the current value, then fewer demos)."""
    best = alive[0]
    if len(alive) < 2:
        return best, "mean"
    other = alive[1]
    a, b = entrants[best], entrants[other]
    if 0 not in (best, other) and bool(a.choice.nearest) != bool(b.choice.nearest) and within_noise(a, b):
        return (best if a.choice.nearest else other), "prior"
    return best, "mean"


def _label(c: Choice) -> str:
    return f"nearest {c.nearest}" if c.nearest else f"{len(c.demos)} fixed"


def summarize(demos: tuple[Demo, ...]) -> str:
    return "\n".join(
        f"{json.dumps(dict(d.inputs), default=str)[:200]} -> {json.dumps(d.output, default=str)[:100]}" for d in demos
    ) or "(no demos)"


__all__: list[Any] = [
    "Choice", "Entrant", "RaceResult", "candidates", "draw", "final_pick", "halving_cost", "plan", "race", "split_rows",
    "summarize", "within_noise",
]
