"""The state of a training run as one frozen record: `TrainState`.

Everything a run needs to continue as if it had never stopped is one value: the best
program so far, the scores of the start and of the incumbent, the history of typed
rounds, each optimizer's memory, the demo pools, the random state, the accounting. A
round takes a state and gives a new one; rolling a round back is keeping the old record.
The checkpoint (promptc.optim.checkpoint) saves it with the codec the `.pfc` uses
(promptc.codec: the records' annotations are their encoding).

The schedule position is read from the history (`next_round`): no counter is kept beside
it that could disagree with it.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
from attrs import evolve, field, frozen

from promptc.codec import Codec
from promptc.ir import Program
from promptc.optim.demos import Pool
from promptc.optim.history import Round
from promptc.optim.optimizers import DemoOptimizer, Optimizer, PromptOptimizer
from promptc.runtime.accounting import Accounting, Counts


@frozen
class Evaluation:
    """Per-row scores of one program on a fixed row set (a prefix when stopped early)."""

    scores: tuple[float, ...]
    rows: int  # how many rows the set has

    @property
    def complete(self) -> bool:
        return len(self.scores) == self.rows

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@frozen
class RngState:
    """A `random.Random`'s state (`getstate()`), as data."""

    version: int
    internal: tuple[int, ...]
    gauss: float | None = None

    @classmethod
    def of(cls, rng: random.Random) -> RngState:
        version, internal, gauss = rng.getstate()
        return cls(version, tuple(internal), gauss)

    def live(self) -> random.Random:
        """A generator in this state (the record stays as it is)."""
        rng = random.Random()
        rng.setstate((self.version, self.internal, self.gauss))
        return rng


@frozen
class AccountRow:
    """One row of the accounting: what one phase spent on one model."""

    phase: str
    model: str
    counts: Counts


@frozen
class TrainState:
    program: Program  # the best program so far (the source with the accepted params)
    rng: RngState  # the sampler of minibatches, row orders and demo sets
    start: Evaluation | None = None  # the source program on the validation rows
    best: Evaluation | None = None  # the incumbent (`program`) on the validation rows
    calls_per_row: float = 1.0  # requests one validation row costs (measured at the start)
    history: tuple[Round, ...] = ()
    optimizers: dict[str, Optimizer] = field(factory=dict)  # by trainable param, in program order
    pools: dict[str, Pool] = field(factory=dict)  # demo pools, by demos param
    accounting: tuple[AccountRow, ...] = ()  # as of the last save (the live counters are the engine's)
    stopped: str = ""  # why the run ended ("" while it runs)

    @property
    def step(self) -> int:
        """Rounds done."""
        return len(self.history)

    def prompt_optimizers(self) -> list[PromptOptimizer]:
        return [o for o in self.optimizers.values() if isinstance(o, PromptOptimizer)]

    def demo_optimizers(self) -> list[DemoOptimizer]:
        return [o for o in self.optimizers.values() if isinstance(o, DemoOptimizer)]

    def prompt_steps(self) -> int:
        """Prompt steps done: prompt rounds, or demo rounds in a run without trainable prompts."""
        kind = "prompts" if self.prompt_optimizers() else "demos"
        return sum(1 for r in self.history if r.kind == kind)

    def demos_due(self) -> bool:
        """A demo search comes next: at the start, and after a prompt round that accepted a change."""
        if not self.demo_optimizers():
            return False
        if not self.history:
            return True
        last = self.history[-1]
        return last.kind == "prompts" and bool(last.accepted)

    def next_round(self, steps: int) -> str | None:
        """"demos", "prompts", or None when the schedule of `steps` prompt steps is done."""
        if self.demos_due():
            return "demos"
        if self.prompt_steps() < steps:
            return "prompts" if self.prompt_optimizers() else ("demos" if self.demo_optimizers() else None)
        return None

    def with_optimizer(self, opt: Optimizer) -> TrainState:
        return evolve(self, optimizers={**self.optimizers, opt.param: opt})


def _optimizers(source: Program) -> dict[str, Optimizer]:
    """A new optimizer for each trainable param, in program order."""
    opts: dict[str, Optimizer] = {}
    for p in source.trainable():
        if p.kind == "prompt":
            opts[p.name] = PromptOptimizer(p.name)
        elif p.kind == "demos":
            opts[p.name] = DemoOptimizer(p.name)
    return opts


def fresh(source: Program, seed: int) -> TrainState:
    """The state of a run that has not started."""
    opts = _optimizers(source)
    pools = {n: Pool() for n, o in opts.items() if isinstance(o, DemoOptimizer)}
    return TrainState(source, RngState.of(random.Random(seed)), optimizers=opts, pools=pools)


def adopt(saved: TrainState, source: Program) -> TrainState:
    """A saved state continued on `source` (the program compiled now, which may have
    changed since): the saved param values put on it, and each trainable param's
    optimizer and pool from the save when it has one (a new param starts fresh)."""
    program = source
    names = {q.name for q in source.params}
    for p in saved.program.params:
        if p.name in names:
            q = source.param(p.name)
            program = program.with_param(evolve(q, text=p.text, demos=p.demos, nearest=p.nearest))
    opts = {
        n: saved.optimizers[n] if type(saved.optimizers.get(n)) is type(o) else o
        for n, o in _optimizers(source).items()
    }
    pools = {n: saved.pools.get(n, Pool()) for n, o in opts.items() if isinstance(o, DemoOptimizer)}
    return evolve(saved, program=program, optimizers=opts, pools=pools)


def accounting_rows(acc: Accounting) -> tuple[AccountRow, ...]:
    return tuple(AccountRow(p, m, c) for p, m, c in acc.rows())


def accounting_of(state: TrainState) -> Accounting:
    """A live accounting holding the state's counts."""
    acc = Accounting()
    for row in state.accounting:
        acc.add(row.phase, row.model, **{k: getattr(row.counts, k) for k in _COUNT_FIELDS})
    return acc


_COUNT_FIELDS = tuple(f.name for f in attrs.fields(Counts))

CODEC = Codec(TrainState)

__all__: list[Any] = [
    "CODEC", "Evaluation", "RngState", "AccountRow", "TrainState", "accounting_of", "accounting_rows", "adopt", "fresh",
]
