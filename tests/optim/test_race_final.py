"""The race's final choice: when the last two challengers are within noise of each other,
a nearest-neighbour pool wins over a fixed set (promptc.optim.race.final_pick); a clear
winner, or the current value, keeps the old rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

from promptc.ir import Demo
from promptc.optim import race as race_lib
from promptc.optim.demos import Pool, PoolEntry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _pool(n: int = 20) -> Pool:
    return Pool(tuple(
        PoolEntry(Demo(inputs=(("q", f"question {i}"),), output="AB"[i % 2]), "labeled", 100 + i) for i in range(n)
    ))


POOL = _pool()
EVERYTHING = tuple(e.demo for e in POOL.entries)
NEAREST = race_lib.Choice(EVERYTHING, 4)
FIXED = race_lib.Choice(EVERYTHING[:4])
ROWS = list(range(30))


def _run(sets, score_of):
    async def evaluate(choice, rows):
        return [score_of(choice, r) for r in rows]

    return asyncio.run(race_lib.race(sets, POOL, ROWS, 8, evaluate))


def test_a_one_row_lead_of_a_fixed_set_does_not_beat_the_nearest_pool():
    # the fixed set is right on 13 of 30 rows, the pool on 12: within noise
    def score_of(choice, r):
        if choice == FIXED:
            return 1.0 if r < 13 else 0.0
        if choice == NEAREST:
            return 1.0 if 1 <= r < 13 else 0.0
        return 0.0

    result = _run([race_lib.Choice(), FIXED, NEAREST], score_of)
    assert result.winner == NEAREST and result.decided_by == "prior"
    means = {what: mean for what, mean, _ in result.table}
    assert means["4 fixed"] > means["nearest 4"]  # the pool won on the prior, not on the mean


def test_a_fixed_set_that_is_clearly_better_still_wins():
    def score_of(choice, r):
        if choice == FIXED:
            return 1.0 if r < 20 else 0.0
        if choice == NEAREST:
            return 1.0 if r < 8 else 0.0
        return 0.0

    result = _run([race_lib.Choice(), FIXED, NEAREST], score_of)
    assert result.winner == FIXED and result.decided_by == "mean"


def test_the_current_value_keeps_winning_ties_against_a_pool():
    current = FIXED  # the incumbent, a fixed set; the pool scores the same on every row
    result = _run([current, NEAREST], lambda c, r: 1.0 if r % 3 else 0.0)
    assert result.is_current and result.winner == current and result.decided_by == "mean"


def test_within_noise_pairs_the_rows_both_were_scored_on():
    a = race_lib.Entrant(NEAREST, (1, 2, 3, 4), (1.0, 1.0, 1.0, 1.0))
    b = race_lib.Entrant(FIXED, (2, 3, 4, 5), (0.0, 0.0, 0.0, 1.0))
    assert race_lib.paired(a, b) == ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert not race_lib.within_noise(a, b)  # 3 of 3 common rows gained: a clear difference
    c = race_lib.Entrant(FIXED, (1, 2, 3, 4), (1.0, 1.0, 1.0, 0.0))
    assert race_lib.within_noise(a, c)


def test_a_demo_round_splits_the_race_budget_between_the_params_still_to_search():
    from attrs import evolve

    from promptc.compiler import compile_file
    from promptc.optim.budget import Budgeted, Limits
    from promptc.optim.rounds import Rounds, Setup
    from promptc.optim.state import fresh

    program = compile_file(str(EXAMPLES / "multihop" / "multihop.pflow"))
    setup = Setup(
        source=program, train=({},) * 10, val=({},) * 6, steps=0, batch_size=4, proposals=1, threshold=1.0,
        concurrency=1, limits=Limits(calls=160),
    )
    state = evolve(fresh(program, 0), calls_per_row=5.0)
    rounds = Rounds(setup, Budgeted(object(), setup.limits))
    assert len(state.demo_optimizers()) == 2  # query_shots, answer_shots; steps=0: all of the budget
    left = 160 - 6 * 5.0  # after the gate's validation pass
    assert rounds.race_budget(state) == left / 2  # the first param's share
    assert rounds.race_budget(state, to_go=1) == left  # the last param gets what is left


def test_how_the_final_choice_was_made_is_recorded_in_the_history(monkeypatch):
    import random

    from promptc.compiler import compile_file
    from promptc.optim import checkpoint, history, optimizers
    from promptc.optim.optimizers import Context, DemoOptimizer

    program = compile_file(str(EXAMPLES / "trec" / "trec.pflow"))
    name = next(p.name for p in program.params if p.kind == "demos")
    table = (("nearest 4", 0.4, 30), ("4 fixed", 0.43, 30))

    async def decided_by_the_prior(sets, pool, order, first, evaluate):
        return race_lib.RaceResult(NEAREST, False, len(sets), 60, table, "prior")

    monkeypatch.setattr(optimizers.race_lib, "race", decided_by_the_prior)

    async def run(prog, rows):
        return [None] * len(rows), [0.0] * len(rows)

    train = tuple({"question": f"q{i}", "label": "HUM"} for i in range(40))
    context = Context(engine=None, rng=random.Random(0), pools={name: POOL}, train=train, run=run)
    cand, _ = asyncio.run(DemoOptimizer(name).propose(program, context))
    assert cand.race.decided_by == "prior"
    attempt = history.Attempt(name, "demos", cand.text, race=cand.race)
    entry = history.entry(history.Round(1, "demos", (attempt,), 0.5))
    race = entry["proposals"][0]["race"]
    assert race["decided_by"] == "prior" and race["standing"] == [list(t) for t in table]
    assert history.DECISIONS == ("mean", "prior")
    # a checkpoint holding any other decision is refused
    from attrs import evolve

    assert checkpoint._attempt(attempt, 40, 6) is None
    coin = evolve(attempt, race=evolve(attempt.race, decided_by="coin"))
    assert checkpoint._attempt(coin, 40, 6) == "a race decided by 'coin'"
