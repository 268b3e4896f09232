"""Nearest-demos pools show each call's demos in one order fixed for the pool, so calls
share prompt prefixes the embedded model computes once (promptc.runtime.nearest).
No model needed: selection is BM25 over the demos' inputs."""

from __future__ import annotations

import json
from pathlib import Path

from promptc.ir import Demo
from promptc.runtime import nearest

DATA = Path(__file__).resolve().parents[2] / "bench" / "peerbench" / "data"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


POOL = tuple(Demo(inputs=(("question", r["question"]),), output=r["coarse_label"]) for r in load("train.jsonl"))
QUESTIONS = [r["question"] for r in load("test.jsonl")]


def test_the_order_follows_how_often_the_pools_own_rows_choose_each_demo():
    rank = nearest.pool_order(POOL, 8)
    assert sorted(rank) == list(range(len(POOL)))
    uses = [0] * len(POOL)
    for d in POOL:
        for chosen in nearest.select(POOL, dict(d.inputs), 8):
            uses[POOL.index(chosen)] += 1
    by_rank = sorted(range(len(POOL)), key=lambda i: rank[i])
    assert [uses[i] for i in by_rank] == sorted(uses, reverse=True)
    assert nearest.pool_order(POOL, 8) == rank  # cached, and the same


def test_every_call_lists_its_demos_in_the_pool_order_and_calls_share_prefixes():
    rank = nearest.pool_order(POOL, 8)
    shown = [nearest.select(POOL, {"question": q}, 8) for q in QUESTIONS]
    for demos in shown:
        assert len(demos) == 8 and len(set(demos)) == 8
        ranks = [rank[POOL.index(d)] for d in demos]
        assert ranks == sorted(ranks)
    # the most used demo opens most calls' demos: their prompts share it as a prefix
    first = [demos[0] for demos in shown]
    assert max(first.count(d) for d in set(first)) >= len(shown) // 3


def test_the_order_does_not_change_which_demos_a_call_sees():
    """The chosen set is the nearest demo of each label, then the nearest others; a row
    never sees itself. Checked against a direct computation from the BM25 scores."""
    from promptc.runtime import bm25

    texts = [dict(d.inputs)["question"] for d in POOL]
    for q in QUESTIONS[:20] + texts[:10]:
        scores = bm25.scores(q, texts, stopwords=None)
        ranked = sorted((i for i in range(len(POOL)) if texts[i] != q), key=lambda i: (-scores[i], i))
        per_label: dict[str, int] = {}
        for i in ranked:
            per_label.setdefault(POOL[i].output, i)
        expected = set(per_label.values())
        expected |= set([i for i in ranked if i not in expected][: 8 - len(expected)])
        assert {POOL.index(d) for d in nearest.select(POOL, {"question": q}, 8)} == expected


def test_small_k_and_empty_pools():
    assert nearest.select((), {"question": "Who?"}, 3) == ()
    assert nearest.select(POOL, {"question": "Who?"}, 0) == ()
    only = POOL[:1]
    assert nearest.select(only, dict(only[0].inputs), 2) == ()  # a row is never its own demo
