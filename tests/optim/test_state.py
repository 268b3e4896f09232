"""The training state as one record: saved and loaded through the codec, read for the
schedule, and kept as it was when a round is abandoned."""

from __future__ import annotations

import asyncio
import random

import msgpack
from attrs import evolve

from promptc.optim import checkpoint
from promptc.optim.demos import Pool
from promptc.optim.history import Attempt, Round
from promptc.optim.optimizers import Candidate, Context, DemoOptimizer, PromptOptimizer
from promptc.optim.state import CODEC, TrainState, fresh
from promptc.optim.trainer import Trainer
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import forward
from tests.optim.helpers import Engine, kind, trec_like

QUESTIONS = [("Who wrote Hamlet?", "HUM"), ("Where is Paris?", "LOC"), ("How many legs has a spider?", "NUM"),
             ("Who painted it?", "HUM"), ("Where is Lima?", "LOC"), ("How far is the moon?", "NUM")]
ROWS = [{"question": f"{q} ({i})", "answer": a} for i in range(4) for q, a in QUESTIONS]
TRAIN, VAL = ROWS[:16], ROWS[16:]


def answer(req) -> str:
    """Right on HUM questions; on the others only when shown demos, or told about places."""
    if kind(req) == "backward":
        return '{"instruction": "Say that places are LOC.", "answer_format": "Fine."}'
    if kind(req) == "optimizer":
        return "<proposal>Classify the question. Places are LOC.</proposal>"
    system, question = req.messages[0]["content"], req.messages[-1]["content"]
    gold = next(a for q, a in QUESTIONS if q in question)
    if gold == "HUM" or (gold == "LOC" and "places are LOC" in system.lower()) or len(req.messages) > 2:
        return gold
    return "HUM"


def train(tmp_path, name: str, **kw):
    return Trainer(trec_like(), TRAIN, VAL, Engine(answer), run_dir=tmp_path / name, steps=2, batch_size=4,
                   seed=3, concurrency=2, **kw).fit()


def test_the_state_round_trips_through_the_codec(tmp_path):
    result = train(tmp_path, "run")
    assert result.steps_done >= 2 and any(h["accepted"] for h in result.history)
    state = checkpoint.load(tmp_path / "run", len(TRAIN), len(VAL))
    assert state.pools["shots"].entries and state.history and state.best.complete
    assert state.program == result.program
    data = msgpack.unpackb(msgpack.packb(CODEC.encode(state)), strict_map_key=False)
    assert CODEC.decode(data) == state
    checkpoint.save(tmp_path / "copy", state)
    assert (tmp_path / "copy" / checkpoint.FILE).read_bytes() == (tmp_path / "run" / checkpoint.FILE).read_bytes()


def test_an_abandoned_round_leaves_the_state_before_it(tmp_path):
    from promptc.compiler import compile_source
    from promptc.runtime.engine import make_engine
    from tests.optim.scripted_task import SOURCE, Script, data

    Script().register()
    rows, val = data()

    def prompts_only(name: str, **kw):  # no demo search: a budget does not change round 1
        engine = make_engine(cache_dir=tmp_path / f"cache_{name}")
        return Trainer(compile_source(SOURCE, "trec.pflow"), rows, val, engine, run_dir=tmp_path / name, steps=3,
                       batch_size=4, seed=1, **kw).fit()

    assert prompts_only("one", stop_after=1).steps_done == 1
    kept = checkpoint.load(tmp_path / "one", len(rows), len(val))
    spent = sum(r.counts.requests for r in kept.accounting)
    # the same run with a budget that runs out two calls into round 2
    stopped = prompts_only("two", max_calls=spent + 2)
    assert stopped.steps_done == 1 and stopped.stopped.startswith("budget: max_calls")
    after = checkpoint.load(tmp_path / "two", len(rows), len(val))
    assert sum(r.counts.requests for r in after.accounting) == spent + 2  # what round 2 spent is counted

    def core(s: TrainState) -> TrainState:
        return evolve(s, accounting=(), stopped="", history=tuple(evolve(r, seconds=0.0) for r in s.history))

    assert core(after) == core(kept)  # program, scores, memories, random state: as before round 2


def test_the_schedule_is_read_from_the_history():
    state = fresh(trec_like(), 0)
    assert [o.param for o in state.prompt_optimizers()] == ["instruction", "answer_format"]
    assert state.next_round(2) == "demos"
    demos = Round(1, "demos", (), 0.5)
    state = evolve(state, history=(demos,))
    assert state.next_round(2) == "prompts" and state.prompt_steps() == 0
    accepted = Round(2, "prompts", (Attempt("instruction", "prompt", "x", accepted=True),), 0.7)
    state = evolve(state, history=(demos, accepted))
    assert state.next_round(2) == "demos" and state.prompt_steps() == 1
    state = evolve(state, history=(demos, accepted, evolve(demos, step=3), Round(4, "prompts", (), 0.7)))
    assert state.next_round(2) is None and state.prompt_steps() == 2
    # without trainable prompts every step is a demo search
    demos_only = fresh(trec_like(), 0)
    demos_only = evolve(demos_only, optimizers={"shots": demos_only.optimizers["shots"]})
    assert evolve(demos_only, history=(demos,)).next_round(2) == "demos"
    assert evolve(demos_only, history=(demos, evolve(demos, step=2))).next_round(2) is None


def test_optimizers_are_values():
    program = trec_like()
    opt = PromptOptimizer("instruction")
    cand = Candidate("instruction", "prompt", program, "new text")
    rejected = opt.revert(cand, "no gain", 0.25)
    assert opt.memory == () and rejected.memory == (("new text", 0.25),) and rejected.rejected == ("new text",)
    assert rejected.step(cand, None).rejected == ()
    demo = DemoOptimizer("shots")
    refused = demo.revert(evolve(cand, param="shots", kind="demos", signature="sig"), "no gain")
    assert refused.refused == ("sig",) and demo.refused == () and refused.step(cand, 1.0).refused == ()


def test_the_demo_optimizer_builds_its_pool_from_a_scored_minibatch():
    program = trec_like()  # the demos' node is not the output node: no free labeled demos
    engine = Engine(answer)

    async def run(prog, rows):
        traces = await forward(prog, rows, engine, phase="demos")
        return traces, score(prog, traces, rows)

    context = Context(engine=engine, rng=random.Random(0), pools={"shots": Pool()}, train=tuple(TRAIN), run=run,
                      batch_size=4)
    pools = asyncio.run(DemoOptimizer("shots").bootstrap(program, context))
    assert engine.count("demos") == 4  # one minibatch, drawn with the run's random state
    entries = pools["shots"].entries
    assert entries and {e.origin for e in entries} == {"trace"}  # the minibatch's successes
    assert all(answer_of(e) == e.demo.output for e in entries)


def answer_of(entry) -> str:
    return TRAIN[entry.row]["answer"]
