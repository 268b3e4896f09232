"""The rounds of training: each takes a `TrainState` and gives the next one.

    rounds = Rounds(setup, metered, progress)
    state = await rounds.play(state, "demos")     # or "prompts"

Every proposal, of either kind, goes through one `attempt`: a refusal is recorded; a
candidate is pre-screened on the failing minibatch samples when the round has them (a
prompt round: the candidate must fix more than it breaks there), then gated on the
validation rows (promptc.optim.gate) against the incumbent; the optimizer then `step`s
(the candidate becomes the incumbent at once: later params see it) or `revert`s, told
the candidate's validation score only when the validation was complete (a stopped-early
pass's mean is over a prefix of the rows: not comparable to its memory's scores).

A demo round asks each demo optimizer in turn (it builds its pool, then races demo sets
within the call budget `race_budget` gives it). A prompt round runs a minibatch with the
incumbent, the backward program on the samples scoring below the threshold, then asks
each prompt optimizer with gradients for up to `proposals` candidates, and lets the
minibatch grow the demo pools.

`progress` receives one event (a dict) when a phase starts and as its rows finish: step
(prompt steps done, or the one in progress: never more than `steps`; in a run without
trainable prompts, demo rounds), steps, round (rounds done or in progress: demo searches
count), phase, param, done / rows (rows finished in the phase's current pass, and how many
it has; rows None when unknown), start, best, val, requests, new_calls, tokens, cost, and
budget (the share of the tightest training budget spent, None without one).

Every batch of calls is bracketed by the budget (`Budgeted.spending`): a round during
which the budget ran out raises `BudgetExhausted`, and the trainer keeps the state it had
before the round.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any, Callable, Sequence

from attrs import evolve, frozen

from promptc.ir import Program
from promptc.optim import gate
from promptc.optim.backward import Gradients, backward
from promptc.optim.budget import Budgeted, Limits
from promptc.optim.demos import observe
from promptc.optim.fit import context_window
from promptc.optim.history import Attempt, Feedback, Round, spent
from promptc.optim.optimizers import Candidate, Context, Outcome, Refusal
from promptc.optim.roles import task_model
from promptc.optim.state import Evaluation, RngState, TrainState
from promptc.runtime.evaluate import ascore
from promptc.runtime.interpreter import forward

DEMO_SHARE = 0.6  # of the remaining call budget, for a demo search followed by prompt steps


@frozen
class Setup:
    """What every round reads: fixed for a run."""

    source: Program
    train: tuple[dict, ...]
    val: tuple[dict, ...]
    steps: int
    batch_size: int
    proposals: int
    threshold: float
    concurrency: int
    limits: Limits
    search_dirs: tuple = ()


@frozen
class Screen:
    """The failing minibatch samples of a prompt round, and their total score with the incumbent."""

    rows: tuple[dict, ...]
    base: float


class Rounds:
    def __init__(self, setup: Setup, metered: Budgeted, progress: Callable[[dict], None] | None = None):
        self.setup = setup
        self.metered = metered
        self.progress = progress
        self._playing: str | None = None  # the kind of the round in progress
        self._last: tuple[TrainState, dict] | None = None  # the last phase event (for row progress)

    # -- scoring -------------------------------------------------------------------------------
    async def run(
        self, program: Program, rows: Sequence[dict], phase: str, engine=None, *, offset: int = 0, of: int | None = None
    ) -> tuple[list, list[float]]:
        """Traces and scores of `rows`; through the training budget unless `engine` is given.
        The rows are reported done as they finish (`offset` + done of `of` rows: a chunk of a
        longer pass)."""
        engine = engine or self.metered
        s = self.setup
        total = of if of is not None else len(rows)
        with self.metered.spending() if engine is self.metered else contextlib.nullcontext():
            traces = await forward(
                program, list(rows), engine, concurrency=s.concurrency, phase=phase, search_dirs=s.search_dirs,
                progress=lambda done, _: self.rows_done(offset + done, total),
            )
            # an LLM judge scores through the same engine and budget; a score keeps the metric's
            # feedback (promptc.runtime.evaluate.Score) for the backward pass
            scores = await ascore(program, traces, list(rows), engine=engine, phase=phase, search_dirs=s.search_dirs)
        return traces, list(scores)

    async def run_demos(self, program: Program, rows: list[dict]) -> tuple[list, list[float]]:
        return await self.run(program, rows, "demos")

    async def validate(self, program: Program, against: Evaluation | None) -> Evaluation:
        """Scores on the validation rows, in chunks; stops once `program` cannot pass the gate
        against `against` (the incumbent)."""
        val = self.setup.val
        scores: list[float] = []
        chunk = max(1, self.setup.concurrency)
        for start in range(0, len(val), chunk):
            _, got = await self.run(program, val[start : start + chunk], "validate", offset=start, of=len(val))
            scores += [float(s) for s in got]
            if against is not None and len(scores) < len(val) and gate.hopeless(against.scores, scores):
                break
        return Evaluation(tuple(scores), len(val))

    def emit(self, state: TrainState, **event: Any) -> None:
        """A progress event (the keys of the module doc); `event` names the phase and param."""
        if self.progress is None:
            return
        self._last = (state, event)
        t = self.metered.totals()
        best = state.best.mean if state.best else None
        counts = self._playing == "prompts" or (self._playing == "demos" and not state.prompt_optimizers())
        self.progress({
            "step": min(self.setup.steps, state.prompt_steps() + (1 if counts else 0)), "steps": self.setup.steps,
            "round": state.step + (1 if self._playing else 0), "val": best, "best": best,
            "start": state.start.mean if state.start else None, "param": None, "done": 0, "rows": None,
            "requests": t.requests, "new_calls": t.calls, "tokens": t.tokens, "cost": t.cost,
            "budget": self.budget_spent(), **event,
        })

    def rows_done(self, done: int, rows: int) -> None:
        """The last phase event again, with `done` of its `rows` finished."""
        if self._last is not None:
            state, event = self._last
            self.emit(state, **{**event, "done": done, "rows": rows})

    def budget_spent(self) -> float | None:
        """The share of the tightest training budget spent (None: no budget)."""
        lim, t = self.setup.limits, self.metered.totals()
        shares = [
            used / limit
            for used, limit in ((t.requests, lim.calls), (t.tokens, lim.tokens), (t.cost, lim.cost))
            if limit is not None and limit > 0
        ]
        return min(1.0, max(shares)) if shares else None

    # -- the start -----------------------------------------------------------------------------
    async def begin(self, state: TrainState) -> TrainState:
        """Score the source on every validation row: the start, and the first incumbent."""
        self.emit(state, phase="validate", rows=len(self.setup.val))
        start = await self.validate(self.setup.source, None)
        calls_per_row = max(1.0, self.metered.totals().requests / len(self.setup.val))
        for opt in state.prompt_optimizers():
            state = state.with_optimizer(opt.start(self.setup.source.param(opt.param).text, start.mean))
        return evolve(state, start=start, best=start, calls_per_row=calls_per_row)

    # -- one round -----------------------------------------------------------------------------
    async def play(self, state: TrainState, kind: str) -> TrainState:
        """`state` after one more round of `kind` ("demos" | "prompts")."""
        t0 = time.monotonic()
        before = self.metered.accounting.snapshot()
        rng = state.rng.live()
        step = state.step + 1
        self._playing = kind
        try:
            if kind == "demos":
                state, rnd = await self.demo_round(state, rng, step)
            else:
                state, rnd = await self.prompt_round(state, rng, step)
        finally:
            self._playing = None
        rnd = evolve(rnd, accounting=spent(self.metered.accounting.since(before)), seconds=round(time.monotonic() - t0, 3))
        return evolve(state, history=state.history + (rnd,), rng=RngState.of(rng))

    async def attempt(self, state: TrainState, outcome: Outcome, screen: Screen | None) -> tuple[TrainState, Attempt]:
        """Record, pre-screen, gate, then step or revert the proposing optimizer."""
        if isinstance(outcome, Refusal):
            return state, Attempt(
                outcome.param, outcome.kind, None, reason=outcome.reason, rejections=outcome.rejections,
                race=outcome.race, replies=outcome.replies,
            )
        cand: Candidate = outcome
        opt = state.optimizers[cand.param]
        attempt = Attempt(
            cand.param, cand.kind, cand.text, rejections=cand.rejections, race=cand.race, signature=cand.signature,
            replies=cand.replies,
        )
        if screen is not None:
            self.emit(state, phase="screen", param=cand.param, rows=len(screen.rows))
            _, fscores = await self.run(cand.program, screen.rows, "validate")
            attempt = evolve(attempt, failing_before=screen.base, failing_after=float(sum(fscores)))
            if sum(fscores) <= screen.base:
                attempt = evolve(attempt, reason="no gain on the failing minibatch samples")
                return state.with_optimizer(opt.revert(cand, attempt.reason)), attempt
        self.emit(state, phase="validate", param=cand.param, rows=len(self.setup.val))
        ev = await self.validate(cand.program, state.best)
        verdict = gate.compare(state.best.scores, ev.scores)
        attempt = evolve(attempt, val=ev.mean, val_rows=len(ev.scores), gain=verdict.gain)
        if ev.complete and verdict.accepted:
            attempt = evolve(attempt, accepted=True, reason=verdict.reason)
            return evolve(state.with_optimizer(opt.step(cand, ev.mean)), program=cand.program, best=ev), attempt
        attempt = evolve(attempt, reason=verdict.reason if ev.complete else f"stopped early: {verdict.reason}")
        return state.with_optimizer(opt.revert(cand, attempt.reason, ev.mean if ev.complete else None)), attempt

    # -- demo round ----------------------------------------------------------------------------
    def race_budget(self, state: TrainState, to_go: int | None = None) -> float | None:
        """Calls one demo search may spend now: a share of what the budget has left after a
        validation pass, split between the demo params still to search in this round
        (`to_go`; default all of them), so what one param's turn left unspent goes to the next."""
        s = self.setup
        if s.limits.calls is None:
            return None
        left = s.limits.calls - self.metered.totals().requests - len(s.val) * state.calls_per_row
        share = DEMO_SHARE if (state.prompt_optimizers() and state.prompt_steps() < s.steps) else 1.0
        return max(0.0, left * share / max(1, to_go or len(state.demo_optimizers())))

    async def demo_round(self, state: TrainState, rng: random.Random, step: int) -> tuple[TrainState, Round]:
        s = self.setup
        attempts: list[Attempt] = []
        names = [o.param for o in state.demo_optimizers()]
        for k, name in enumerate(names):
            self.emit(state, phase="demos", param=name)
            at, to_go = state, len(names) - k  # what the race's budget is worked out from, once the pool is built
            context = Context(
                engine=self.metered, rng=rng, pools=state.pools, train=s.train, run=self.run_demos,
                race_budget=lambda: self.race_budget(at, to_go), calls_per_row=state.calls_per_row,
                window=context_window(task_model(state.program)), batch_size=s.batch_size, threshold=s.threshold,
            )
            outcome, pools = await state.optimizers[name].propose(state.program, context)
            state, attempt = await self.attempt(evolve(state, pools=pools), outcome, None)
            attempts.append(attempt)
        return state, Round(step, "demos", tuple(attempts), state.best.mean)

    # -- prompt round --------------------------------------------------------------------------
    async def prompt_round(self, state: TrainState, rng: random.Random, step: int) -> tuple[TrainState, Round]:
        s = self.setup
        idx = rng.sample(range(len(s.train)), min(s.batch_size, len(s.train)))
        batch = [s.train[i] for i in idx]
        self.emit(state, phase="forward", rows=len(batch))
        traces, scores = await self.run(state.program, batch, "forward")
        failing = [i for i, x in enumerate(scores) if x < s.threshold]
        attempts: list[Attempt] = []
        feedback: dict[str, tuple[Feedback, ...]] = {}
        backward_calls = 0
        if failing and state.prompt_optimizers():
            self.emit(state, phase="backward")
            with self.metered.spending():
                grads = await backward(
                    state.program, traces, batch, scores, self.metered, threshold=s.threshold, concurrency=s.concurrency
                )
            backward_calls = grads.calls
            feedback = {
                p: tuple(Feedback(idx[g.sample], g.text, g.node, g.step) for g in grads.for_param(p))
                for p in grads.params()
            }
            screen = Screen(tuple(batch[i] for i in failing), sum(scores[i] for i in failing))
            state, attempts = await self._prompt_proposals(state, rng, step, grads, screen)
        if state.demo_optimizers():
            pools = await observe(
                state.pools, state.program, idx, batch, traces, scores, threshold=s.threshold, run=self.run_demos
            )
            state = evolve(state, pools=pools)
        return state, Round(
            step, "prompts", tuple(attempts), state.best.mean, batch=tuple(idx),
            minibatch_scores=tuple(float(x) for x in scores), failing=len(failing), backward_calls=backward_calls,
            gradients=feedback,
        )

    async def _prompt_proposals(
        self, state: TrainState, rng: random.Random, step: int, grads: Gradients, screen: Screen
    ) -> tuple[TrainState, list[Attempt]]:
        """Up to `proposals` candidates for each prompt param with gradients; the first one
        accepted ends that param's turn."""
        attempts: list[Attempt] = []
        for name in [o.param for o in state.prompt_optimizers()]:
            if not grads.for_param(name):
                continue
            for k in range(self.setup.proposals):
                self.emit(state, phase="propose", param=name)
                context = Context(engine=self.metered, rng=rng, pools=state.pools, gradients=grads, index=k)
                with self.metered.spending():
                    outcome, _ = await state.optimizers[name].propose(state.program, context)
                state, attempt = await self.attempt(state, outcome, screen)
                attempts.append(attempt)
                if attempt.accepted:
                    screen = evolve(screen, base=attempt.failing_after)
                    break
        return state, attempts


__all__ = ["DEMO_SHARE", "Rounds", "Screen", "Setup"]
