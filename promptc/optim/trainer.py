"""The fit loop: evaluate, search demos, step the prompts, gate every change.

    result = Trainer(program, train, val, engine, steps=4, batch_size=8, run_dir="runs/x").fit()

The schedule (one history entry per round):
  0. the starting program is scored on every validation row (phase "validate"); those
     per-row scores are the incumbent's, against which every candidate is gated;
  1. a **demo search** for each trainable `demos` param, if any (phase "demos"): the
     demo optimizer races candidate sets on training rows (promptc.optim.demos), and
     the winner goes through the gate on validation. It runs first because demos are
     free to build (labeled rows cost no call) and, on a small model, move the score
     most; it takes most of a call budget (60 % of what is left when prompt steps
     follow, all of it otherwise);
  2. `steps` **prompt steps** (phases "forward", "backward", "propose", "validate"):
     a minibatch of training rows is run with the best program; the backward program
     runs on the samples scoring below `threshold` (selective gradients); for each
     trainable prompt param with gradients, up to `proposals` candidates are proposed
     (the optimizer's reply goes through promptc.optim.extract's filters first), each
     pre-screened on the failing minibatch samples (it must fix more than it breaks there)
     and then gated on validation; an accepted candidate becomes the best program at once
     (later params see it). The minibatch also grows the demo pools (successful traces,
     failing rows with their answers, the teacher's successes);
  3. after a prompt step that accepted a change, another demo search (the best demos may
     depend on the instruction), budget permitting. Without trainable prompts, each of
     the `steps` rounds is a demo search.

The gate (promptc.optim.gate) is one paired test over the validation rows, used for both
kinds of candidate; a validation pass stops early once the candidate cannot pass it.

Budgets (`max_calls`, `max_tokens`, `max_cost`) are hard and checked per call
(promptc.optim.budget): a round during which a budget ran out is abandoned (its calls are
in the cache) and the run stops with the reason. They count requests, cache hits included,
so a resumed run stops where the uninterrupted one would. With `test` rows, the start and
final programs are scored on them at the end, whatever stopped the run, with calls
counted apart (phase "test", never refused by the training budget).

`resume=True` restores the last checkpoint in `run_dir` (params, history, optimizer
state, demo pools, random state, accounting, schedule position) and continues.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from attrs import evolve, frozen

from promptc.ir import Program
from promptc.optim import checkpoint, demos as demo_lib, gate, outputs
from promptc.optim.backward import backward
from promptc.optim.budget import BudgetExhausted, Budgeted, Limits
from promptc.optim.history import Attempt, Round
from promptc.optim.optimizers import Candidate, DemoOptimizer, PromptOptimizer, Refusal
from promptc.optim.outputs import Result, phase_table
from promptc.runtime.accounting import Accounting

log = logging.getLogger(__name__)

DEMO_SHARE = 0.6  # of the remaining call budget, for a demo search followed by prompt steps


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
    ):
        if not program.trainable():
            log.warning("the program has no trainable param: training can only evaluate it")
        self.source = program
        self.program = program
        self.train, self.val, self.test = list(train), list(val), list(test) if test else None
        if not self.train or not self.val:
            raise ValueError("training needs a non-empty train set and a non-empty validation set")
        self.steps, self.batch_size, self.proposals = steps, batch_size, proposals
        self.threshold = threshold
        self.limits = Limits(max_calls, max_tokens, max_cost)
        self.run_dir = Path(run_dir)
        self.seed, self.resume, self.concurrency = seed, resume, concurrency
        self.out = Path(out) if out else self.run_dir / f"{program.workflow.name}.pfc"
        self.search_dirs = tuple(search_dirs)  # after the source's own folder (promptc.bind.search_path)
        self.progress = progress
        self.stop_after = stop_after  # test hook: stop (as if killed) after this many rounds
        self.engine = engine
        self.metered = Budgeted(engine, self.limits, Accounting())
        self.rng = random.Random(seed)
        self.step = 0  # rounds done
        self.prompt_steps = 0
        self.demos_due = True
        self.start: Evaluation | None = None
        self.best: Evaluation | None = None
        self.calls_per_row = 1.0
        self.history: list[dict] = []
        self.prompt_opts = {p.name: PromptOptimizer(p.name) for p in program.trainable() if p.kind == "prompt"}
        self.demo_opts = {p.name: DemoOptimizer(p.name) for p in program.trainable() if p.kind == "demos"}
        self.stopped = ""

    # -- scoring -------------------------------------------------------------------------
    async def _run(self, program: Program, rows: list[dict], phase: str, engine=None) -> tuple[list, list[float]]:
        from promptc.runtime.evaluate import ascore
        from promptc.runtime.interpreter import forward

        engine = engine or self.metered
        if engine is self.metered:
            self.metered.check()
        traces = await forward(
            program, rows, engine, concurrency=self.concurrency, phase=phase, search_dirs=self.search_dirs
        )
        # an LLM judge scores through the same engine and budget; a score keeps the metric's
        # feedback (promptc.runtime.evaluate.Score) for the backward pass
        scores = await ascore(program, traces, rows, engine=engine, phase=phase, search_dirs=self.search_dirs)
        if engine is self.metered:
            self.metered.verify()
        return traces, list(scores)

    async def _validate(self, program: Program, against: Evaluation | None) -> Evaluation:
        """Scores on the validation rows, in chunks; stops once `program` cannot pass the gate
        against `against` (the incumbent)."""
        scores: list[float] = []
        chunk = max(1, self.concurrency)
        for start in range(0, len(self.val), chunk):
            _, got = await self._run(program, self.val[start : start + chunk], "validate")
            scores += got
            if against is not None and len(scores) < len(self.val) and gate.hopeless(against.scores, scores):
                break
        return Evaluation(tuple(scores), len(self.val))

    async def _judge(self, cand: Candidate, attempt: Attempt) -> tuple[Attempt, Evaluation | None]:
        """Gate `cand` on validation; the attempt record with the verdict."""
        self._emit(phase="validate", param=cand.param)
        ev = await self._validate(cand.program, self.best)
        verdict = gate.compare(self.best.scores, ev.scores)
        attempt = evolve(attempt, val=ev.mean, val_rows=len(ev.scores), gain=verdict.gain)
        if ev.complete and verdict.accepted:
            return evolve(attempt, accepted=True, reason=verdict.reason), ev
        reason = verdict.reason if ev.complete else f"stopped early: {verdict.reason}"
        return evolve(attempt, reason=reason), None

    def _emit(self, **event: Any) -> None:
        if self.progress is not None:
            t = self.metered.totals()
            self.progress({
                "step": self.step, "steps": self.steps,
                "val": self.best.mean if self.best else None, "best": self.best.mean if self.best else None,
                "start": self.start.mean if self.start else None,
                "requests": t.requests, "new_calls": t.calls, "tokens": t.tokens, "cost": t.cost, **event,
            })

    # -- demo search --------------------------------------------------------------------------
    def _race_budget(self) -> float | None:
        if self.limits.calls is None:
            return None
        left = self.limits.calls - self.metered.totals().requests - len(self.val) * self.calls_per_row
        share = DEMO_SHARE if (self.prompt_opts and self.prompt_steps < self.steps) else 1.0
        return max(0.0, left * share / max(1, len(self.demo_opts)))

    def _context(self) -> int | None:
        from promptc.optim.roles import task_model
        from promptc.optim.fit import context_window

        return context_window(task_model(self.program))

    async def _bootstrap_pool(self, opt: DemoOptimizer) -> None:
        """Grow a demo pool before a search: free labeled rows, and, when that gives too
        few demos (an intermediate node), one minibatch run for traces and the teacher."""
        param = self.program.param(opt.param)
        opt.grow(opt.pool.add(demo_lib.free_labeled(self.program, opt.param, self.train)))
        if len(opt.pool.entries) >= (param.max_demos or 4):
            return
        idx = self.rng.sample(range(len(self.train)), min(self.batch_size, len(self.train)))
        batch = [self.train[i] for i in idx]
        traces, scores = await self._run(self.program, batch, "demos")
        await self._grow_pools(idx, batch, traces, scores)

    async def _grow_pools(self, idx, batch, traces, scores) -> None:
        async def teacher_run(prog: Program, rows: list[dict]):
            return await self._run(prog, rows, "demos")

        for opt in self.demo_opts.values():
            opt.grow(await demo_lib.collect(
                self.program, opt.param, idx, batch, traces, scores, opt.pool,
                threshold=self.threshold, teacher_run=teacher_run,
            ))

    async def _demo_round(self, step: int) -> Round:
        attempts: list[Attempt] = []
        for name, opt in self.demo_opts.items():
            self._emit(phase="demos", step=step, param=name)
            await self._bootstrap_pool(opt)
            order = list(range(len(self.train)))
            self.rng.shuffle(order)

            async def evaluate(program: Program, rows: list[int]) -> list[float]:
                return (await self._run(program, [self.train[i] for i in rows], "demos"))[1]

            got = await opt.propose(
                self.program, rows=order, evaluate=evaluate, budget=self._race_budget(),
                calls_per_row=self.calls_per_row, rng=self.rng, context=self._context(),
            )
            if isinstance(got, Refusal):
                attempts.append(Attempt(name, "demos", None, reason=got.reason, info=got.info))
                continue
            attempt, ev = await self._judge(got, Attempt(name, "demos", got.text, info=got.info))
            if ev is not None:
                self.program, self.best = got.program, ev
                opt.step(got, ev.mean)
            else:
                opt.revert(got, attempt.reason, attempt.val)
            attempts.append(attempt)
        return Round(step, "demos", tuple(attempts), self.best.mean)

    # -- prompt step ---------------------------------------------------------------------------
    async def _prompt_round(self, step: int) -> Round:
        idx = self.rng.sample(range(len(self.train)), min(self.batch_size, len(self.train)))
        batch = [self.train[i] for i in idx]
        self._emit(phase="forward", step=step)
        traces, scores = await self._run(self.program, batch, "forward")
        failing = [i for i, s in enumerate(scores) if s < self.threshold]
        attempts: list[Attempt] = []
        grads_count: dict[str, int] = {}
        backward_calls = 0
        if failing and self.prompt_opts:
            self._emit(phase="backward", step=step)
            self.metered.check()
            grads = await backward(
                self.program, traces, batch, scores, self.metered, threshold=self.threshold, concurrency=self.concurrency
            )
            self.metered.verify()
            backward_calls = grads.calls
            grads_count = {p: len(grads.for_param(p)) for p in grads.params()}
            fail_batch = [batch[i] for i in failing]
            base = sum(scores[i] for i in failing)
            for name, opt in self.prompt_opts.items():
                if not grads.for_param(name):
                    continue
                for k in range(self.proposals):
                    self._emit(phase="propose", step=step, param=name)
                    self.metered.check()
                    got = await opt.propose(self.program, grads, self.metered, index=k)
                    self.metered.verify()
                    if isinstance(got, Refusal):
                        attempts.append(Attempt(name, "prompt", None, reason=got.reason, rejections=got.rejections))
                        continue
                    attempt = Attempt(name, "prompt", got.text, rejections=tuple(got.info.get("rejections", ())))
                    _, fscores = await self._run(got.program, fail_batch, "validate")
                    attempt = evolve(attempt, failing_before=base, failing_after=sum(fscores))
                    if sum(fscores) <= base:
                        attempt = evolve(attempt, reason="no gain on the failing minibatch samples")
                        opt.revert(got, attempt.reason)
                        attempts.append(attempt)
                        continue
                    attempt, ev = await self._judge(got, attempt)
                    attempts.append(attempt)
                    if ev is not None:
                        self.program, self.best, base = got.program, ev, sum(fscores)
                        opt.step(got, ev.mean)
                        break
                    opt.revert(got, attempt.reason, attempt.val if attempt.val_rows == len(self.val) else None)
        if self.demo_opts:
            await self._grow_pools(idx, batch, traces, scores)
        return Round(
            step, "prompts", tuple(attempts), self.best.mean, batch=tuple(idx), minibatch_scores=tuple(scores),
            failing=len(failing), backward_calls=backward_calls, gradients=grads_count,
        )

    def _next_round(self) -> str | None:
        if self.demo_opts and self.demos_due:
            return "demos"
        if self.prompt_steps < self.steps:
            return "prompts" if self.prompt_opts else ("demos" if self.demo_opts else None)
        return None

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "source_hash": self.source.source_hash,
            "step": self.step,
            "prompt_steps": self.prompt_steps,
            "demos_due": self.demos_due,
            "params": checkpoint.params_to_data(self.program),
            "start_scores": list(self.start.scores) if self.start else None,
            "best_scores": list(self.best.scores) if self.best else None,
            "calls_per_row": self.calls_per_row,
            "history": self.history,
            "prompt_optimizers": {n: o.to_data() for n, o in self.prompt_opts.items()},
            "demo_optimizers": {n: o.to_data() for n, o in self.demo_opts.items()},
            "rng": checkpoint.rng_to_data(self.rng),
            "accounting": self.metered.accounting.to_data(),
            "stopped": self.stopped,
        }

    def _restore(self, state: dict, keep_accounting: bool = False) -> None:
        if state.get("source_hash") != self.source.source_hash:
            log.warning("resuming %s: the source changed since the checkpoint", self.run_dir)
        self.step, self.prompt_steps, self.demos_due = state["step"], state["prompt_steps"], state["demos_due"]
        self.program = checkpoint.apply_params(self.source, state["params"])
        n = len(self.val)
        self.start = Evaluation(tuple(state["start_scores"]), n) if state.get("start_scores") is not None else None
        self.best = Evaluation(tuple(state["best_scores"]), n) if state.get("best_scores") is not None else None
        self.calls_per_row = state.get("calls_per_row", 1.0)
        self.history = list(state["history"])
        po, do = state.get("prompt_optimizers", {}), state.get("demo_optimizers", {})
        self.prompt_opts = {n: PromptOptimizer.from_data(n, po.get(n)) for n in self.prompt_opts}
        self.demo_opts = {n: DemoOptimizer.from_data(n, do.get(n)) for n in self.demo_opts}
        self.rng = checkpoint.rng_from_data(state["rng"])
        if not keep_accounting:
            self.metered = Budgeted(self.engine, self.limits, Accounting.from_data(state["accounting"]))

    # -- the loop ------------------------------------------------------------------------------
    async def afit(self) -> Result:
        state = checkpoint.load(self.run_dir) if self.resume else None
        if state is not None and "prompt_steps" in state:
            self._restore(state)
            log.info("resumed %s at round %d", self.run_dir, self.step)
        elif state is not None:
            log.warning("%s: the checkpoint is from an older promptc; starting over", self.run_dir)
        new_at_start = self.metered.totals().calls
        stopped = ""
        try:
            if self.best is None:
                self._emit(phase="validate", step=0)
                self.start = self.best = await self._validate(self.source, None)
                requests = self.metered.totals().requests
                self.calls_per_row = max(1.0, requests / len(self.val))
                for p in self.source.trainable():
                    if p.kind == "prompt":
                        self.prompt_opts[p.name].start(p.text, self.start.mean)
                checkpoint.save(self.run_dir, self._state())
            while (kind := self._next_round()) is not None:
                if self.stop_after is not None and self.step >= self.stop_after:
                    return self._interrupted()
                reason = self.metered.exhausted()
                if reason:
                    stopped = reason
                    break
                t0 = time.monotonic()
                saved = copy.deepcopy(self._state())
                before = self.metered.accounting.snapshot()
                try:
                    rnd = await (self._demo_round(self.step + 1) if kind == "demos" else self._prompt_round(self.step + 1))
                except BudgetExhausted:
                    # a round is a transaction: drop its partial results (they are in the
                    # cache), keep what it spent
                    self._restore(saved, keep_accounting=True)
                    raise
                rnd = evolve(rnd, accounting=phase_table(self.metered.accounting.since(before), stable=True),
                             seconds=round(time.monotonic() - t0, 3))
                self.step += 1
                if kind == "demos":
                    self.demos_due = False
                    if not self.prompt_opts:
                        self.prompt_steps += 1
                else:
                    self.prompt_steps += 1
                    self.demos_due = bool(rnd.accepted) and bool(self.demo_opts)
                self.history.append(rnd.to_data())
                checkpoint.save(self.run_dir, self._state())
                self._emit(phase="done", step=self.step, accepted=rnd.accepted)
        except BudgetExhausted as e:
            stopped = str(e)
            log.info("training stopped: %s", stopped)
        self.stopped = stopped or f"completed {self.step} step(s)"
        checkpoint.save(self.run_dir, self._state())
        test_start = test_best = None
        test_acc = Accounting()
        if self.test:
            self._emit(phase="test", step=self.step)
            tester = Budgeted(self.engine, Limits(), test_acc)
            test_start = await self._mean(self.source, self.test, tester)
            test_best = test_start if self.program == self.source else await self._mean(self.program, self.test, tester)
        result = Result(
            program=self.program,
            source=self.source,
            start_val=self.start.mean if self.start else 0.0,
            best_val=self.best.mean if self.best else 0.0,
            history=tuple(self.history),
            steps_done=self.step,
            stopped=self.stopped,
            accounting=phase_table(self.metered.accounting),
            test_start=test_start,
            test_best=test_best,
            test_accounting=phase_table(test_acc),
            new_calls=int(self.metered.totals().calls - new_at_start),
        )
        return evolve(result, artifact=str(self._write_outputs(result)))

    def _write_outputs(self, result: Result) -> Path:
        return outputs.write(result, self.run_dir, self.out)

    def _interrupted(self) -> Result:
        self.stopped = f"interrupted after step {self.step}"
        return Result(
            program=self.program, source=self.source, start_val=self.start.mean if self.start else 0.0,
            best_val=self.best.mean if self.best else 0.0, history=tuple(self.history), steps_done=self.step,
            stopped=self.stopped, accounting=phase_table(self.metered.accounting),
        )

    async def _mean(self, program: Program, data: list[dict], engine) -> float:
        _, scores = await self._run(program, data, "test", engine=engine)
        return sum(scores) / len(scores) if scores else 0.0

    def fit(self) -> Result:
        return asyncio.run(self.afit())

__all__ = ["Attempt", "BudgetExhausted", "Evaluation", "Result", "Round", "Trainer", "phase_table"]
