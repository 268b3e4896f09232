"""The optimizers, one object per param kind, with one protocol: propose / step / revert.

    cand = await optimizer.propose(...)      # a Candidate: a whole new program, or None
    verdict = gate.compare(best, scores)     # the trainer scores it; one gate for all
    optimizer.step(cand, score)  if verdict.accepted  else  optimizer.revert(cand, reason)

- `PromptOptimizer` (a `prompt` param): textual gradient descent with memory
  (promptc.optim.instruction renders the meta-prompt and filters the reply). Its memory
  holds the values tried with their validation scores; `revert` adds the value to the
  rejected list the next proposals are shown.
- `DemoOptimizer` (a `demos` param): a race of candidate demo sets on training rows
  (promptc.optim.demos); its pool of demos grows from every scored batch.

The optimizers hold only what they learn across steps (memory, rejected values, the
pool); the trainer owns the program, the budget and the gate. Their state is plain data
(`to_data` / `from_data`) for checkpoints.
"""

from __future__ import annotations

import random
from typing import Any, Awaitable, Callable, Sequence

from attrs import define, evolve, field, frozen

from promptc.ir import Program
from promptc.optim import demos as demo_lib
from promptc.optim.backward import Gradients
from promptc.optim.instruction import propose as propose_text


@frozen
class Candidate:
    """A proposed change of one param, as a whole program ready to be scored."""

    param: str
    kind: str  # "prompt" | "demos"
    program: Program
    text: str  # what changed, for the history (the new value, or a summary of the demos)
    info: dict = field(factory=dict)  # optimizer-specific facts for the history (race table...)


@frozen
class Refusal:
    """A proposal that never became a candidate (the optimizer's reply was filtered out,
    or a race kept the current value)."""

    param: str
    kind: str
    reason: str
    rejections: tuple[str, ...] = ()
    info: dict = field(factory=dict)


@define
class PromptOptimizer:
    param: str
    memory: list[tuple[str, float]] = field(factory=list)  # (value, validation score) tried
    rejected: list[str] = field(factory=list)  # values refused since the last accepted one

    async def propose(self, program: Program, gradients: Gradients, engine, *, index: int = 0) -> Candidate | Refusal:
        current = program.param(self.param)
        prop = await propose_text(
            program, self.param, gradients, engine, memory=list(self.memory), rejected=list(self.rejected), index=index
        )
        rejections = tuple(getattr(prop, "rejections", ()) or ())
        if prop.text is None:
            return Refusal(self.param, "prompt", prop.reason or "no proposal", rejections)
        cand = program.with_param(evolve(current, text=prop.text))
        return Candidate(self.param, "prompt", cand, prop.text, {"rejections": list(rejections)})

    def step(self, cand: Candidate, score: float | None) -> None:
        if score is not None:
            self.memory.append((cand.text, score))
        self.rejected.clear()

    def revert(self, cand: Candidate, reason: str, score: float | None = None) -> None:
        if score is not None:
            self.memory.append((cand.text, score))
        self.rejected.append(cand.text)

    def start(self, text: str, score: float) -> None:
        self.memory = [(text, score)]

    def to_data(self) -> dict:
        return {"memory": [list(m) for m in self.memory], "rejected": list(self.rejected)}

    @classmethod
    def from_data(cls, param: str, d: dict | None) -> "PromptOptimizer":
        d = d or {}
        return cls(param, [(t, float(s)) for t, s in d.get("memory", [])], list(d.get("rejected", [])))


Evaluate = Callable[[Program, list[int]], Awaitable[list[float]]]


@define
class DemoOptimizer:
    param: str
    pool: demo_lib.Pool = field(factory=demo_lib.Pool)
    refused: list[str] = field(factory=list)  # signatures of values the gate refused

    def grow(self, pool: demo_lib.Pool) -> None:
        self.pool = pool

    async def propose(
        self,
        program: Program,
        *,
        rows: Sequence[int],
        evaluate: Evaluate,
        budget: float | None,
        calls_per_row: float,
        rng: random.Random,
        context: int | None = None,
    ) -> Candidate | Refusal:
        """Race candidate sets on the training `rows` (in that order) within `budget` calls."""
        param = program.param(self.param)
        race_rows, draw_from = demo_lib.split_rows(rows, self.pool)
        chosen = demo_lib.plan(budget, len(race_rows) - (0 if draw_from else (param.max_demos or 4)), calls_per_row)
        if chosen is None:
            return Refusal(self.param, "demos", f"no race fits the remaining budget ({budget:.0f} calls)")
        count, first = chosen
        labels = demo_lib.output_labels(program, self.param)
        current = demo_lib.Choice.current(param)
        sets = demo_lib.candidates(
            self.pool, current, param.max_demos or 4, labels, count, rng, context, draw_from, exclude=set(self.refused)
        )
        if len(sets) < 2:
            return Refusal(self.param, "demos", "no candidate demo set (the pool is empty)")

        async def score_set(choice: demo_lib.Choice, on: list[int]) -> list[float]:
            return await evaluate(program.with_param(choice.of(param)), on)

        result = await demo_lib.race(sets, self.pool, race_rows, first, score_set)
        info = {
            "race": {"entrants": result.entrants, "first_rows": first, "evaluations": result.calls_rows,
                     "standing": [list(r) for r in result.table[:8]]},
        }
        if result.is_current:
            return Refusal(self.param, "demos", "the current demo set won the race", info=info)
        info["signature"] = result.winner.key()
        return Candidate(self.param, "demos", program.with_param(result.winner.of(param)), result.winner.summary(), info)

    def step(self, cand: Candidate, score: float | None) -> None:
        self.refused.clear()  # the incumbent changed: what lost to the old one may win now

    def revert(self, cand: Candidate, reason: str, score: float | None = None) -> None:
        self.refused.append(cand.info["signature"])

    def to_data(self) -> dict:
        return {"pool": self.pool.to_data(), "refused": list(self.refused)}

    @classmethod
    def from_data(cls, param: str, d: dict | None) -> "DemoOptimizer":
        d = d or {}
        return cls(param, demo_lib.Pool.from_data(d.get("pool", [])), list(d.get("refused", [])))


__all__: list[Any] = ["Candidate", "DemoOptimizer", "PromptOptimizer", "Refusal"]
