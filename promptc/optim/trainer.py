"""The training loop: forward, score, backward on failures, propose, validate, accept.

    result = Trainer(program, train, val, engine, steps=4, batch_size=8, run_dir="runs/x").fit()

One step:
  1. sample a minibatch from `train` (a seeded `random.Random`, checkpointed);
  2. forward + score it with the best program so far (phase "forward");
  3. backward on the samples scoring below `threshold` (phase "backward");
  4. for each trainable prompt param that received gradients, up to `proposals`
     candidates (phase "propose"); each is accepted in two stages (phase "validate"):
       a. on the failing minibatch samples its total score must beat the current one;
       b. on the full validation set its mean must STRICTLY beat the best so far; the
          validation pass stops early (chunk by chunk) once the candidate cannot win even
          if every remaining sample scored 1.0 (metrics are in [0, 1]);
     an accepted candidate becomes the best program at once (later params see it);
  5. for each trainable demos param, grow the demo pool from this minibatch (with the
     teacher on the failing samples, phase "demos") and try one new set, accepted by
     stage b only (a demo may contain a minibatch answer, so stage a would be leaky);
  6. append a history entry and write the checkpoint.

Budgets (`max_calls`, `max_tokens`, `max_cost`) are hard: they are checked before every
batch of calls, and the engine wrapper (`Meter`) refuses any request past `max_calls`.
A step during which a budget ran out is abandoned (its results are not kept; they are in
the cache) and the run stops cleanly with the reason. Budgets count the model requests
training makes — answered by a model or by the cache alike — so a resumed or repeated run
stops at exactly the same point as the uninterrupted one; `new_calls` (what actually
reached a model) is reported beside them.

`resume=True` restores the last checkpoint in `run_dir` (params, history, rejected
proposals, memory, demo pool, random state, accounting, step) and continues; with the
cache, replaying a step that was interrupted costs no new call.
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
from promptc.optim import checkpoint, demos as demo_opt, history as hist
from promptc.optim.backward import backward
from promptc.optim.instruction import propose
from promptc.runtime.records import CallResult

log = logging.getLogger(__name__)

PHASES = ("forward", "backward", "propose", "validate", "demos")
_FIELDS = ("requests", "new_calls", "errors", "prompt_tokens", "completion_tokens", "cost")


class BudgetExhausted(Exception):
    """Raised inside a step when a budget ran out; the trainer stops cleanly."""


class Meter:
    """Wraps an engine: counts requests per phase and refuses calls past the call budget."""

    def __init__(self, engine, *, max_calls: int | None = None, data: dict | None = None):
        self.engine = engine
        self.max_calls = max_calls
        self.counts: dict[str, dict[str, float]] = {p: dict.fromkeys(_FIELDS, 0) for p in PHASES}
        for phase, c in (data or {}).items():
            self.counts.setdefault(phase, dict.fromkeys(_FIELDS, 0)).update(c)
        self.refused = 0

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def total(self, field: str) -> float:
        return sum(c.get(field, 0) for c in self.counts.values())

    @property
    def tokens(self) -> int:
        return int(self.total("prompt_tokens") + self.total("completion_tokens"))

    async def call(self, req) -> CallResult:
        c = self.counts.setdefault(req.phase, dict.fromkeys(_FIELDS, 0))
        if self.max_calls is not None and self.total("requests") >= self.max_calls:
            self.refused += 1
            return CallResult(text=None, error=f"budget exhausted: max_calls={self.max_calls}")
        c["requests"] += 1  # reserved before the await: concurrent calls cannot overshoot
        res = await self.engine.call(req)
        c["new_calls"] += 0 if res.cached else 1
        c["errors"] += 0 if res.ok else 1
        c["prompt_tokens"] += res.prompt_tokens
        c["completion_tokens"] += res.completion_tokens
        c["cost"] += res.cost
        return res

    def snapshot(self) -> dict:
        return {p: dict(c) for p, c in self.counts.items()}

    @staticmethod
    def delta(after: dict, before: dict, stable: bool = True) -> dict:
        """Per-phase difference; `stable` drops what depends on the cache (new_calls)."""
        out = {}
        for p, c in after.items():
            b = before.get(p, {})
            d = {k: c.get(k, 0) - b.get(k, 0) for k in _FIELDS if not (stable and k == "new_calls")}
            if any(d.values()):
                out[p] = d
        return out


@frozen
class Result:
    program: Program
    source: Program
    start_val: float
    best_val: float
    history: tuple[dict, ...]
    steps_done: int
    stopped: str
    accounting: dict
    test_start: float | None = None
    test_best: float | None = None
    artifact: str | None = None
    new_calls: int = 0  # requests of THIS process that reached a model (not the cache)


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
        self.max_calls, self.max_tokens, self.max_cost = max_calls, max_tokens, max_cost
        self.run_dir = Path(run_dir)
        self.seed, self.resume, self.concurrency = seed, resume, concurrency
        self.out = Path(out) if out else self.run_dir / f"{program.workflow.name}.pfc"
        dirs = list(search_dirs)
        if program.file and not program.file.startswith("<"):
            dirs.insert(0, str(Path(program.file).resolve().parent))
        self.search_dirs = tuple(dirs)
        self.progress = progress
        self.stop_after = stop_after  # test hook: stop (as if killed) after this many steps
        self.meter = Meter(engine, max_calls=max_calls)
        self.rng = random.Random(seed)
        self.step = 0
        self.start_val: float | None = None
        self.best_val: float | None = None
        self.history: list[dict] = []
        self.rejected: list[dict] = []
        self.memory: dict[str, list[list]] = {}
        self.pool: dict[str, list[dict]] = {}
        self.stopped = ""

    # -- the pieces ------------------------------------------------------------------
    def _budget_reason(self) -> str | None:
        m = self.meter
        if self.max_calls is not None and m.total("requests") >= self.max_calls:
            return f"budget: max_calls={self.max_calls} reached"
        if self.max_tokens is not None and m.tokens >= self.max_tokens:
            return f"budget: max_tokens={self.max_tokens} reached"
        if self.max_cost is not None and m.total("cost") >= self.max_cost:
            return f"budget: max_cost={self.max_cost} reached"
        return None

    def _before_batch(self) -> None:
        reason = self._budget_reason()
        if reason:
            raise BudgetExhausted(reason)

    def _after_batch(self) -> None:
        if self.meter.refused:
            raise BudgetExhausted(f"budget: max_calls={self.max_calls} reached")

    async def _forward(self, program: Program, batch: list[dict], phase: str) -> tuple[list, list[float]]:
        from promptc.runtime.evaluate import ascore
        from promptc.runtime.interpreter import forward

        self._before_batch()
        traces = await forward(
            program, batch, self.meter, concurrency=self.concurrency, phase=phase, search_dirs=self.search_dirs
        )
        scores = await ascore(program, traces, batch, engine=self.meter, phase=phase, search_dirs=self.search_dirs)
        self._after_batch()
        return traces, list(scores)

    async def _validate(self, program: Program, best: float | None) -> tuple[float, bool]:
        """Mean validation score, and whether it was computed on the whole set."""
        n = len(self.val)
        need = None if best is None else best * n
        total, done = 0.0, 0
        chunk = max(1, self.concurrency)
        for start in range(0, n, chunk):
            part = self.val[start : start + chunk]
            _, scores = await self._forward(program, part, "validate")
            total += sum(scores)
            done += len(part)
            if need is not None and done < n and total + (n - done) <= need + 1e-9:
                return total / done, False
        return total / n, True

    def _emit(self, **event: Any) -> None:
        if self.progress is not None:
            self.progress(
                {
                    "step": self.step,
                    "steps": self.steps,
                    "val": self.best_val,
                    "best": self.best_val,
                    "start": self.start_val,
                    "requests": int(self.meter.total("requests")),
                    "new_calls": int(self.meter.total("new_calls")),
                    "tokens": self.meter.tokens,
                    "cost": self.meter.total("cost"),
                    **event,
                }
            )

    # -- one step --------------------------------------------------------------------
    async def _run_step(self, step: int) -> dict:
        before = self.meter.snapshot()
        program = self.program
        idx = self.rng.sample(range(len(self.train)), min(self.batch_size, len(self.train)))
        batch = [self.train[i] for i in idx]
        self._emit(phase="forward", step=step)
        traces, scores = await self._forward(program, batch, "forward")
        failing = [i for i, s in enumerate(scores) if s < self.threshold]
        entry: dict[str, Any] = {
            "step": step,
            "batch": idx,
            "minibatch_scores": scores,
            "minibatch_score": sum(scores) / len(scores),
            "failing": len(failing),
            "proposals": [],
            "accepted": [],
        }
        prompts = [p for p in program.trainable() if p.kind == "prompt"]
        demo_params = [p for p in program.trainable() if p.kind == "demos"]
        if failing and prompts:
            self._emit(phase="backward", step=step)
            self._before_batch()
            grads = await backward(
                program, traces, batch, scores, self.meter, threshold=self.threshold, concurrency=self.concurrency
            )
            self._after_batch()
            entry["backward_calls"] = grads.calls
            entry["gradients"] = {p: len(grads.for_param(p)) for p in grads.params()}
            fail_batch = [batch[i] for i in failing]
            base = sum(scores[i] for i in failing)
            for p in prompts:
                if not grads.for_param(p.name):
                    continue
                rejected_now: list[str] = []
                for k in range(self.proposals):
                    current = self.program.param(p.name)
                    self._emit(phase="propose", step=step, param=p.name)
                    self._before_batch()
                    memory = [tuple(m) for m in self.memory.setdefault(p.name, [[current.text, self.best_val]])]
                    prop = await propose(self.program, p.name, grads, self.meter, memory=memory, rejected=rejected_now, index=k)
                    self._after_batch()
                    rec = {"param": p.name, "kind": "prompt", "index": k, "text": prop.text, "reason": prop.reason}
                    entry["proposals"].append(rec)
                    if prop.text is None:
                        continue
                    cand = self.program.with_param(evolve(current, text=prop.text))
                    self._emit(phase="validate", step=step, param=p.name)
                    _, fscores = await self._forward(cand, fail_batch, "validate")
                    rec["failing_before"], rec["failing_after"] = base, sum(fscores)
                    if sum(fscores) <= base:
                        rec["reason"] = "no gain on the failing minibatch"
                    else:
                        val, complete = await self._validate(cand, self.best_val)
                        rec["val"], rec["val_complete"] = val, complete
                        if complete:
                            self.memory[p.name].append([prop.text, val])
                        if complete and val > self.best_val:
                            rec["accepted"] = True
                            self.program, self.best_val, base = cand, val, sum(fscores)
                            entry["accepted"].append(p.name)
                            break
                        rec["reason"] = (
                            f"validation {val:.3f} does not beat {self.best_val:.3f}"
                            + ("" if complete else " (stopped early)")
                        )
                    rejected_now.append(prop.text)
                    self.rejected.append({"step": step, "param": p.name, "text": prop.text, "reason": rec["reason"]})
        for p in demo_params:
            from promptc.runtime.evaluate import score as score_fn
            from promptc.runtime.interpreter import forward as forward_fn

            pool = self.pool.setdefault(p.name, [])
            self._emit(phase="demos", step=step, param=p.name)
            self._before_batch()

            async def fwd(prog, b, engine, **kw):
                return await forward_fn(prog, b, engine, search_dirs=self.search_dirs, **kw)

            await demo_opt.collect(
                self.program, p.name, batch, traces, scores, self.meter, pool,
                threshold=self.threshold, forward=fwd,
                score=lambda prog, t, b: score_fn(prog, t, b, search_dirs=self.search_dirs),
                concurrency=self.concurrency,
            )
            self._after_batch()
            current = self.program.param(p.name)
            chosen = demo_opt.propose_set(current, pool, self.rng)
            if chosen is None:
                continue
            rec = {"param": p.name, "kind": "demos", "index": 0, "text": demo_opt.summarize(chosen), "reason": ""}
            entry["proposals"].append(rec)
            cand = self.program.with_param(evolve(current, demos=chosen))
            val, complete = await self._validate(cand, self.best_val)
            rec["val"], rec["val_complete"] = val, complete
            if complete and val > self.best_val:
                rec["accepted"] = True
                self.program, self.best_val = cand, val
                entry["accepted"].append(p.name)
            else:
                rec["reason"] = f"validation {val:.3f} does not beat {self.best_val:.3f}" + ("" if complete else " (stopped early)")
                self.rejected.append({"step": step, "param": p.name, "text": rec["text"], "reason": rec["reason"]})
        entry["val"] = self.best_val
        entry["best"] = self.best_val
        entry["accounting"] = Meter.delta(self.meter.snapshot(), before)
        return entry

    # -- state -----------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "source_hash": self.source.source_hash,
            "step": self.step,
            "params": checkpoint.params_to_data(self.program),
            "start_val": self.start_val,
            "best_val": self.best_val,
            "history": self.history,
            "rejected": self.rejected,
            "memory": self.memory,
            "demo_pool": self.pool,
            "rng": checkpoint.rng_to_data(self.rng),
            "accounting": self.meter.snapshot(),
            "stopped": self.stopped,
        }

    def _restore(self, state: dict, keep_meter: bool = False) -> None:
        if state.get("source_hash") != self.source.source_hash:
            log.warning("resuming %s: the source changed since the checkpoint", self.run_dir)
        self.step = state["step"]
        self.program = checkpoint.apply_params(self.source, state["params"])
        self.start_val, self.best_val = state["start_val"], state["best_val"]
        self.history = list(state["history"])
        self.rejected = list(state["rejected"])
        self.memory = dict(state["memory"])
        self.pool = dict(state["demo_pool"])
        self.rng = checkpoint.rng_from_data(state["rng"])
        if not keep_meter:
            self.meter = Meter(self.meter.engine, max_calls=self.max_calls, data=state["accounting"])

    # -- the loop --------------------------------------------------------------------
    async def afit(self) -> Result:
        state = checkpoint.load(self.run_dir) if self.resume else None
        if state is not None:
            self._restore(state)
            log.info("resumed %s at step %d", self.run_dir, self.step)
        new_at_start = self.meter.total("new_calls")
        stopped = ""
        try:
            if self.best_val is None:
                self._emit(phase="validate", step=0)
                self.start_val, _ = await self._validate(self.source, None)
                self.best_val = self.start_val
                self.memory = {p.name: [[p.text, self.start_val]] for p in self.source.trainable() if p.kind == "prompt"}
                checkpoint.save(self.run_dir, self._state())
            while self.step < self.steps:
                if self.stop_after is not None and self.step >= self.stop_after:
                    return self._interrupted()
                reason = self._budget_reason()
                if reason:
                    stopped = reason
                    break
                t0 = time.monotonic()
                saved = copy.deepcopy(self._state())
                try:
                    entry = await self._run_step(self.step + 1)
                except BudgetExhausted:
                    # a step is a transaction: drop its partial results (they are in the
                    # cache), keep what it spent
                    self._restore(saved, keep_meter=True)
                    raise
                entry["seconds"] = round(time.monotonic() - t0, 3)
                self.step += 1
                self.history.append(entry)
                checkpoint.save(self.run_dir, self._state())
                self._emit(phase="done", step=self.step, accepted=entry["accepted"])
        except BudgetExhausted as e:
            stopped = str(e)
            log.info("training stopped: %s", stopped)
        self.stopped = stopped or f"completed {self.step} step(s)"
        test_start = test_best = None
        if self.test and not stopped:
            self._emit(phase="test", step=self.step)
            try:
                test_start = await self._mean(self.source, self.test)
                test_best = test_start if self.program == self.source else await self._mean(self.program, self.test)
            except BudgetExhausted as e:
                self.stopped = f"{self.stopped}; test evaluation skipped ({e})"
        checkpoint.save(self.run_dir, self._state())
        result = Result(
            program=self.program,
            source=self.source,
            start_val=self.start_val if self.start_val is not None else 0.0,
            best_val=self.best_val if self.best_val is not None else 0.0,
            history=tuple(self.history),
            steps_done=self.step,
            stopped=self.stopped,
            accounting=self.meter.snapshot(),
            test_start=test_start,
            test_best=test_best,
            new_calls=int(self.meter.total("new_calls") - new_at_start),
        )
        return evolve(result, artifact=str(self._write_outputs(result)))

    def _interrupted(self) -> Result:
        self.stopped = f"interrupted after step {self.step}"
        return Result(
            program=self.program, source=self.source, start_val=self.start_val or 0.0,
            best_val=self.best_val or 0.0, history=tuple(self.history), steps_done=self.step,
            stopped=self.stopped, accounting=self.meter.snapshot(),
        )

    async def _mean(self, program: Program, data: list[dict]) -> float:
        _, scores = await self._forward(program, data, "validate")
        return sum(scores) / len(scores) if scores else 0.0

    def fit(self) -> Result:
        return asyncio.run(self.afit())

    def _write_outputs(self, result: Result) -> Path:
        from promptc import artifact
        from promptc.optim import report

        self.run_dir.mkdir(parents=True, exist_ok=True)
        scores = {
            "start_val": result.start_val,
            "best_val": result.best_val,
            "test_start": result.test_start,
            "test_best": result.test_best,
            "steps": result.steps_done,
            "stopped": result.stopped,
        }
        extra = {
            "history": hist.stable(list(result.history)),
            "scores": scores,
            "source_params": checkpoint.params_to_data(self.source),
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        artifact.save(result.program, self.out, extra=extra)
        hist.write_jsonl(self.run_dir / "history.jsonl", result.history)
        (self.run_dir / "report.html").write_text(
            report.render(self.source, result.program, list(result.history), scores, result.accounting),
            encoding="utf-8",
        )
        return self.out
