"""The fit loop: evaluate, search demos, step the prompts, gate every change.

    result = Trainer(program, train, val, engine, steps=4, batch_size=8, run_dir="runs/x").fit()

The schedule (one history entry per round; promptc.optim.state.TrainState.next_round):
  0. the starting program is scored on every validation row (phase "validate"); those
     per-row scores are the incumbent's, against which every candidate is gated;
  1. a **demo search** for each trainable `demos` param, if any (phase "demos"): the
     demo optimizer builds its pool and races candidate sets on training rows
     (promptc.optim.optimizers.DemoOptimizer), and the winner goes through the gate on
     validation. It runs first because demos are free to build (labeled rows cost no
     call) and, on a small model, move the score most; it takes most of a call budget
     (60 % of what is left when prompt steps follow, all of it otherwise);
  2. `steps` **prompt steps** (phases "forward", "backward", "propose", "validate"):
     a minibatch of training rows is run with the best program; the backward program
     runs on the samples scoring below `threshold` (selective gradients); for each
     trainable prompt param with gradients, up to `proposals` candidates are proposed
     (the optimizer's reply goes through promptc.optim.extract's filters first), each
     pre-screened on the failing minibatch samples (it must fix more than it breaks there)
     and then gated on validation; an accepted candidate becomes the best program at once
     (later params see it). The minibatch also grows the demo pools (successful traces,
     failing rows with their answers, the steps `train { supports ... }` credits that hit
     their row's field, the teacher's successes);
  3. after a prompt step that accepted a change, another demo search (the best demos may
     depend on the instruction), budget permitting. Without trainable prompts, each of
     the `steps` rounds is a demo search.
The rounds themselves, and the one `attempt` every proposal goes through, are
promptc.optim.rounds.

The run's state is one frozen record (promptc.optim.state.TrainState): a round takes it
and gives the next one, and the trainer saves each to the run folder (promptc.optim.
checkpoint). The run folder is locked while the run uses it.

Budgets (`max_calls`, `max_tokens`, `max_cost`) are hard and checked per call
(promptc.optim.budget): a round during which a budget ran out is abandoned (the state
before it is kept; its calls are in the cache and counted) and the run stops with the
reason. They count requests, cache hits included, so a resumed run stops where the
uninterrupted one would. With `test` rows, the start and final programs are scored on
them at the end, whatever stopped the run, with calls counted apart (phase "test", never
refused by the training budget).

The result carries the run's metadata (`outputs.RunInfo`: promptc version, the model of
each role, the seed, the options as given, start time, duration, machine), written to
`summary.json`, the `.pfc`'s `run` extra and the report. When a budget stops the run
before the starting validation completed, `start_val` and `best_val` are None: nothing
was compared (`outputs.end_line` says so).

`progress` receives the events of promptc.optim.rounds (a phase starting, its rows
finishing), one `phase="done"` event after each round, and a last one (`phase="done"`,
`stopped` the reason) once the run's files are written: the final state.

`resume=True` continues from the checkpoint in `run_dir` (params, history, optimizer
memories, demo pools, random state, accounting): the saved params are put on the program
given (a warning says when its source changed since).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from attrs import evolve

from promptc.ir import Program
from promptc.optim import checkpoint, outputs
from promptc.optim.budget import BudgetExhausted, Budgeted, Limits
from promptc.optim.credit import field_check, uncredited
from promptc.optim.history import Attempt, Round
from promptc.optim.outputs import Result, RunInfo, phase_table, run_info
from promptc.optim.rounds import Rounds, Setup
from promptc.optim.state import Evaluation, TrainState, accounting_of, accounting_rows, adopt, fresh
from promptc.runtime.accounting import Accounting
from promptc.runtime.sync import run_sync

log = logging.getLogger(__name__)


class Trainer:
    def __init__(
        self,
        program: Program,
        train: Sequence[dict],
        val: Sequence[dict],
        engine,
        *,
        steps: int = 4,
        batch_size: int = 8,
        proposals: int = 2,
        threshold: float = 1.0,
        max_calls: int | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        run_dir: str | Path = "runs/promptc",
        seed: int = 0,
        test: Sequence[dict] | None = None,
        resume: bool = False,
        concurrency: int = 8,
        out: str | Path | None = None,
        search_dirs: Sequence[str | Path] = (),
        progress: Callable[[dict], None] | None = None,
        stop_after: int | None = None,
        options: Mapping[str, Any] | None = None,
    ):
        """`options`: the options as the caller was given them, for the run's metadata
        (default: this trainer's own settings)."""
        if not program.trainable():
            log.warning("the program has no trainable param: training can only evaluate it")
        if not train or not val:
            raise ValueError("training needs a non-empty train set and a non-empty validation set")
        wrong = field_check(program, train)  # a `supports` field no training row has
        if wrong:
            raise ValueError(wrong)
        for value in uncredited(program):
            log.warning("train { supports %s ... }: no llm step computes '%s'; it gives no credit", value, value)
        self.setup = Setup(
            source=program, train=tuple(train), val=tuple(val), steps=steps, batch_size=batch_size,
            proposals=proposals, threshold=threshold, concurrency=concurrency,
            limits=Limits(max_calls, max_tokens, max_cost),
            search_dirs=tuple(search_dirs),  # after the source's own folder (promptc.bind.search_path)
        )
        self.source = program
        self.test = list(test) if test else None
        self.engine = engine
        self.run_dir = Path(run_dir)
        self.out = Path(out) if out else self.run_dir / f"{program.workflow.name}.pfc"
        self.seed, self.resume = seed, resume
        self.progress = progress
        self.stop_after = stop_after  # test hook: stop (as if killed) after this many rounds
        self.options = dict(options) if options is not None else {
            "steps": steps, "batch_size": batch_size, "proposals": proposals, "threshold": threshold,
            "max_calls": max_calls, "max_tokens": max_tokens, "max_cost": max_cost, "seed": seed,
            "concurrency": concurrency, "resume": resume, "run_dir": str(self.run_dir), "out": str(self.out),
            "train_rows": len(train), "val_rows": len(val), "test_rows": len(test) if test else 0,
        }

    def fit(self) -> Result:
        return run_sync(self.afit())

    async def afit(self) -> Result:
        started, t0 = time.time(), time.monotonic()
        with checkpoint.hold(self.run_dir):
            state = self._begin()
            metered = Budgeted(self.engine, self.setup.limits, accounting_of(state))
            rounds = Rounds(self.setup, metered, self.progress)
            new_at_start = metered.totals().calls
            state, interrupted = await self._train(state, rounds)
            if interrupted:
                return self._result(evolve(state, stopped=f"interrupted after step {state.step}"), metered)
            state = evolve(state, stopped=state.stopped or completed(state))
            self._save(state, metered)
            result = await self._test(state, self._result(state, metered), rounds)
            result = evolve(
                result, new_calls=int(metered.totals().calls - new_at_start),
                run=self._run_info(started, time.monotonic() - t0),
            )
            result = evolve(result, artifact=str(outputs.write(result, self.run_dir, self.out)))
            rounds.emit(state, phase="done", stopped=state.stopped)  # the final state, for the live display
            return result

    def _run_info(self, started: float, seconds: float) -> RunInfo:
        return run_info(self.source, seed=self.seed, options=self.options, started=started, seconds=seconds)

    def _begin(self) -> TrainState:
        """The state to start from: the checkpoint's when resuming (and there is one)."""
        saved = None
        if self.resume:
            saved = checkpoint.load(self.run_dir, len(self.setup.train), len(self.setup.val))
        if saved is None:
            return fresh(self.source, self.seed)
        if saved.program.source_hash != self.source.source_hash:
            log.warning("resuming %s: the source changed since the checkpoint", self.run_dir)
        log.info("resumed %s at round %d", self.run_dir, saved.step)
        return evolve(adopt(saved, self.source), stopped="")

    async def _train(self, state: TrainState, rounds: Rounds) -> tuple[TrainState, bool]:
        """Rounds until the schedule is done or a budget is spent: the last state kept, and
        whether the `stop_after` hook interrupted the run."""
        metered = rounds.metered
        try:
            if state.best is None:
                state = await rounds.begin(state)
                self._save(state, metered)
            while (kind := state.next_round(self.setup.steps)) is not None:
                if self.stop_after is not None and state.step >= self.stop_after:
                    return state, True
                reason = metered.exhausted()
                if reason:
                    return evolve(state, stopped=reason), False
                # a round is a transaction: when it raises, `state` is still the one before it
                state = await rounds.play(state, kind)
                self._save(state, metered)
                rounds.emit(state, phase="done", accepted=state.history[-1].accepted)
        except BudgetExhausted as e:
            log.info("training stopped: %s", e)
            return evolve(state, stopped=str(e)), False
        return state, False

    def _save(self, state: TrainState, metered: Budgeted) -> None:
        checkpoint.save(self.run_dir, evolve(state, accounting=accounting_rows(metered.accounting)))

    def _result(self, state: TrainState, metered: Budgeted) -> Result:
        return Result(
            program=state.program, source=self.source,
            start_val=state.start.mean if state.start else None, best_val=state.best.mean if state.best else None,
            rounds=state.history, steps_done=state.prompt_steps(), stopped=state.stopped,
            accounting=phase_table(metered.accounting),
        )

    async def _test(self, state: TrainState, result: Result, rounds: Rounds) -> Result:
        """`result` with the start and final programs scored on the test rows (if any)."""
        acc = Accounting()
        if not self.test:
            return evolve(result, test_accounting=phase_table(acc))
        rounds.emit(state, phase="test", step=state.step)
        tester = Budgeted(self.engine, Limits(), acc)
        start = await self._mean(rounds, self.source, tester)
        best = start if result.program == self.source else await self._mean(rounds, result.program, tester)
        return evolve(result, test_start=start, test_best=best, test_accounting=phase_table(acc))

    async def _mean(self, rounds: Rounds, program: Program, engine) -> float:
        _, scores = await rounds.run(program, self.test, "test", engine=engine)
        return sum(scores) / len(scores) if scores else 0.0


def completed(state: TrainState) -> str:
    """The end of a run that did its schedule: its prompt steps (what `steps` counts), and
    its rounds when demo searches add to them."""
    steps, rounds = state.prompt_steps(), state.step
    return f"completed {steps} step(s)" + (f" in {rounds} rounds" if rounds != steps else "")


__all__ = ["Attempt", "BudgetExhausted", "Evaluation", "Result", "Round", "Trainer", "completed", "phase_table"]
