"""The optimizers, one per trainable param, with one protocol: propose / step / revert.

    outcome, pools = await optimizer.propose(program, context)  # a Candidate or a Refusal
    verdict = gate.compare(best, scores)                          # the trainer scores it
    optimizer = optimizer.step(cand, score) if verdict.accepted else optimizer.revert(cand, reason, score)

- `PromptOptimizer` (a `prompt` param): textual gradient descent with memory
  (promptc.optim.instruction renders the meta-prompt and filters the reply). Its memory
  holds the values tried with their validation scores; `revert` adds the value to the
  rejected list the next proposals are shown.
- `DemoOptimizer` (a `demos` param): builds its pool first, as DSPy's BootstrapFewShot
  does (free labeled rows; when they give too few demos, one scored minibatch: traces,
  failing rows with their answers, the teacher's reruns: promptc.optim.demos), then races
  candidate demo sets on training rows (promptc.optim.race): by the workflow's score,
  or, for a step that `train { supports ... }` credits, by that step's own successes
  (promptc.optim.credit). A minibatch it scores grows every demo pool of the run, which
  `propose` returns.

An optimizer is a frozen record: what it learns across steps is its fields, and
`step`/`revert` return the optimizer that learned it. The trainer keeps them in its state
(promptc.optim.state) and owns the program, the budget and the gate. `Context` carries
everything an optimizer may use to propose; each kind reads its part.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from attrs import evolve, field, frozen

from promptc.ir import Program
from promptc.optim import race as race_lib
from promptc.optim.backward import Gradients
from promptc.optim.credit import race_program, race_scores
from promptc.optim.demos import Pool, Run, demo_nodes, free_labeled, observe, output_labels
from promptc.optim.history import Race, Reply
from promptc.optim.instruction import propose as propose_text


@frozen
class Candidate:
    """A proposed change of one param, as a whole program ready to be scored."""

    param: str
    kind: str  # "prompt" | "demos"
    program: Program
    text: str  # what changed, for the history (the new value, or a summary of the demos)
    rejections: tuple[str, ...] = ()  # filters that refused optimizer replies before this one
    race: Race | None = None  # the race a demo set won
    signature: str | None = None  # the demo set's value (race.Choice.key)
    replies: tuple[Reply, ...] = ()  # the optimizer's replies, the refused ones first


@frozen
class Refusal:
    """A proposal that never became a candidate (the optimizer's reply was filtered out,
    or a race kept the current value)."""

    param: str
    kind: str
    reason: str
    rejections: tuple[str, ...] = ()
    race: Race | None = None
    replies: tuple[Reply, ...] = ()  # the optimizer's replies, each with the filter that refused it


Outcome = Candidate | Refusal


def _no_budget() -> float | None:
    return None


@frozen
class Context:
    """What an optimizer may use to propose (the trainer builds one per proposal)."""

    engine: Any  # where calls go (the trainer's budgeted engine)
    rng: random.Random  # the run's random draws, used in order
    pools: dict[str, Pool] = field(factory=dict)  # the demo pools of the run, by param
    # prompt optimizer
    gradients: Gradients | None = None  # this step's textual gradients
    index: int = 0  # which proposal of this step for this param (0, 1, ...)
    # demo optimizer
    train: tuple[dict, ...] = ()  # the training rows
    run: Run | None = None  # scores rows with a program (a "demos" phase batch)
    race_budget: Callable[[], float | None] = _no_budget  # calls a race may spend now (None: no budget)
    calls_per_row: float = 1.0  # requests one row costs
    window: int | None = None  # the task model's context window (tokens), when known
    batch_size: int = 8  # rows of a bootstrap minibatch
    threshold: float = 1.0  # a trace scoring at least this gives demos


@frozen
class PromptOptimizer:
    param: str
    memory: tuple[tuple[str, float], ...] = ()  # (value, validation score) tried
    rejected: tuple[str, ...] = ()  # values refused since the last accepted one

    async def propose(self, program: Program, context: Context) -> tuple[Outcome, dict[str, Pool]]:
        current = program.param(self.param)
        prop = await propose_text(
            program, self.param, context.gradients, context.engine,
            memory=list(self.memory), rejected=list(self.rejected), index=context.index,
        )
        rejections = tuple(prop.rejections or ())
        if prop.text is None:
            refusal = Refusal(self.param, "prompt", prop.reason or "no proposal", rejections, replies=prop.replies)
            return refusal, context.pools
        cand = program.with_param(evolve(current, text=prop.text))
        return Candidate(self.param, "prompt", cand, prop.text, rejections, replies=prop.replies), context.pools

    def step(self, cand: Candidate, score: float | None) -> PromptOptimizer:
        memory = self.memory + ((cand.text, score),) if score is not None else self.memory
        return evolve(self, memory=memory, rejected=())

    def revert(self, cand: Candidate, reason: str, score: float | None = None) -> PromptOptimizer:
        memory = self.memory + ((cand.text, score),) if score is not None else self.memory
        return evolve(self, memory=memory, rejected=self.rejected + (cand.text,))

    def start(self, text: str, score: float) -> PromptOptimizer:
        return evolve(self, memory=((text, score),))


@frozen
class DemoOptimizer:
    param: str
    refused: tuple[str, ...] = ()  # signatures of values the gate refused since the incumbent changed

    async def bootstrap(self, program: Program, context: Context) -> dict[str, Pool]:
        """The pools grown for a search: free labeled rows, and, when that gives fewer demos
        than the param shows (an intermediate node), one minibatch scored for traces and the
        teacher (which grows every pool)."""
        param = program.param(self.param)
        pools = dict(context.pools)
        pools[self.param] = pools.get(self.param, Pool()).add(free_labeled(program, self.param, context.train))
        if len(pools[self.param].entries) >= (param.max_demos or 4):
            return pools
        train = context.train
        idx = context.rng.sample(range(len(train)), min(context.batch_size, len(train)))
        batch = [train[i] for i in idx]
        traces, scores = await context.run(program, batch)
        return await observe(pools, program, idx, batch, traces, scores, threshold=context.threshold, run=context.run)

    async def propose(self, program: Program, context: Context) -> tuple[Outcome, dict[str, Pool]]:
        """Build the pool, then race candidate sets on the training rows, in a random order,
        within the budget the context allows."""
        pools = await self.bootstrap(program, context)
        order = list(range(len(context.train)))
        context.rng.shuffle(order)
        return await self._race(program, pools[self.param], order, context), pools

    async def _race(self, program: Program, pool: Pool, rows: list[int], context: Context) -> Outcome:
        param = program.param(self.param)
        budget = context.race_budget()
        race_rows, draw_from = race_lib.split_rows(rows, pool)
        nodes = [n.name for n in demo_nodes(program, self.param)]
        # a credited step races on its own successes: only the part of the workflow they need runs
        lean = race_program(program, nodes, [context.train[i] for i in race_rows])
        racer, calls_per_row = (lean[0], context.calls_per_row * lean[1]) if lean else (program, context.calls_per_row)
        chosen = race_lib.plan(
            budget, len(race_rows) - (0 if draw_from else (param.max_demos or 4)), calls_per_row
        )
        if chosen is None:
            room = "the remaining budget" + (f" ({budget:.0f} calls)" if budget is not None else "")
            return Refusal(self.param, "demos", f"no race fits {room}")
        count, first = chosen
        labels = output_labels(program, self.param)
        current = race_lib.Choice.current(param)
        sets = race_lib.candidates(
            pool, current, param.max_demos or 4, labels, count, context.rng, context.window, draw_from,
            exclude=set(self.refused),
        )
        if len(sets) < 2:
            return Refusal(self.param, "demos", "no candidate demo set (the pool is empty)")

        async def score_set(choice: race_lib.Choice, on: list[int]) -> list[float]:
            cand, rows = racer.with_param(choice.of(param)), [context.train[i] for i in on]
            traces, scores = await context.run(cand, rows)
            return race_scores(cand, nodes, traces, rows, scores)  # a credited step: its own successes

        result = await race_lib.race(sets, pool, race_rows, first, score_set)
        race = Race(result.entrants, first, result.calls_rows, result.table[:8], result.decided_by)
        if result.is_current:
            return Refusal(self.param, "demos", "the current demo set won the race", race=race)
        return Candidate(
            self.param, "demos", program.with_param(result.winner.of(param)), result.winner.summary(),
            race=race, signature=result.winner.key(),
        )

    def step(self, cand: Candidate, score: float | None) -> DemoOptimizer:
        return evolve(self, refused=())  # the incumbent changed: what lost to the old one may win now

    def revert(self, cand: Candidate, reason: str, score: float | None = None) -> DemoOptimizer:
        return evolve(self, refused=self.refused + (cand.signature or "",))


Optimizer = PromptOptimizer | DemoOptimizer

__all__: list[Any] = ["Candidate", "Context", "DemoOptimizer", "Optimizer", "Outcome", "PromptOptimizer", "Refusal"]
