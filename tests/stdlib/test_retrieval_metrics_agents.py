"""std.retrieval (bm25s), std.metrics (SQuAD normalization), std.agents."""

from __future__ import annotations

import pytest

from promptc.stdlib import agents, metrics, retrieval

CORPUS = [
    "Paris is the capital and largest city of France.",
    "Rome is the capital city of Italy. It has the Colosseum.",
    "The Eiffel Tower is a landmark in Paris, France.",
    "Bananas are yellow fruit rich in potassium.",
]


def test_retrieve_ranks_by_bm25():
    top = retrieval.retrieve("capital of Italy", CORPUS, 2)
    assert top[0] == CORPUS[1]
    assert len(top) == 2
    assert retrieval.retrieve("Eiffel Tower", CORPUS, 1) == [CORPUS[2]]


def test_retrieve_edge_cases():
    assert retrieval.retrieve("anything", [], 3) == []
    assert retrieval.retrieve("bananas", CORPUS, 0) == []
    everything = retrieval.retrieve("bananas", CORPUS, 10)
    assert everything[0] == CORPUS[3] and sorted(everything) == sorted(CORPUS)
    # no known word: corpus order, deterministic
    assert retrieval.retrieve("zzz qqq", CORPUS, 2) == CORPUS[:2]
    assert retrieval.retrieve("the of", ["the", "a of"], 1) == ["the"]


def test_retrieve_caches_index_per_corpus():
    from promptc.runtime import bm25

    bm25._indexes.clear()
    retrieval.retrieve("France", CORPUS, 1)
    retrieval.retrieve("Italy", list(CORPUS), 1)
    assert len(bm25._indexes) == 1
    retrieval.retrieve("Italy", CORPUS[:2], 1)
    assert len(bm25._indexes) == 2


def test_passages_hotpotqa():
    ctx = [["Rome", ["Rome is in Italy.", " It is old."]], ["Paris", ["Paris is in France."]]]
    assert retrieval.passages(ctx) == ["Rome: Rome is in Italy. It is old.", "Paris: Paris is in France."]
    assert retrieval.passages({"title": ["A"], "sentences": [["x.", " y."]]}) == ["A: x. y."]
    assert retrieval.passages(["already text"]) == ["already text"]
    assert retrieval.passages(None) == []


@pytest.mark.parametrize(
    "got,expected,em,f1,contains",
    [
        ("The Eiffel Tower!", "eiffel tower", 1.0, 1.0, 1.0),
        ("hum", "HUM", 1.0, 1.0, 1.0),
        ("It is in Paris, France", "Paris", 0.0, 1 / 3, 1.0),
        ("Rome", "Paris", 0.0, 0.0, 0.0),
        (7, "7", 1.0, 1.0, 1.0),
        ("Parisian", "Paris", 0.0, 0.0, 0.0),
    ],
)
def test_metrics(got, expected, em, f1, contains):
    assert metrics.exact_match(got, expected) == em
    assert metrics.f1(got, expected) == pytest.approx(f1)
    assert metrics.contains(got, expected) == contains


def test_metrics_alternatives_and_none():
    assert metrics.exact_match("NYC", ["New York", "NYC"]) == 1.0
    assert metrics.f1(None, "x") == 0.0
    assert metrics.normalize("  The  A-Team, an  answer ") == "team answer"


def test_agent_tools():
    assert agents.search("capital of Italy", CORPUS) == CORPUS[1]
    assert agents.search("x", []) == "No result"
    assert agents.lookup("colosseum", CORPUS) == "It has the Colosseum."
    assert agents.lookup("dragons", CORPUS) == "No result"
    assert agents.act("Search", "Eiffel", CORPUS) == CORPUS[2]
    assert agents.act("lookup", "potassium", CORPUS) == CORPUS[3]
    assert agents.act("finish", "Rome", CORPUS) == "Rome"
    msg = agents.act("fly", "away", CORPUS)
    assert "Unknown action 'fly'" in msg and "search, lookup, finish" in msg


def test_f1_explained_names_the_missing_and_extra_words():
    out = metrics.f1_explained("Paris, Texas", "Paris, France")
    assert out["score"] == metrics.f1("Paris, Texas", "Paris, France") == 0.5
    assert out["feedback"] == (
        "Token F1 0.50: the answer lacks the expected word(s): france; "
        "it has word(s) the expected answer does not: texas."
    )
    assert metrics.f1_explained("the Eiffel Tower", "Eiffel Tower") == {
        "score": 1.0, "feedback": "The answer matches the expected answer."
    }
    assert metrics.f1_explained("", "x")["feedback"] == "Token F1 0.00: the answer is empty."
    # with alternatives, the explanation is about the closest one
    assert "lacks the expected word(s): obama" in metrics.f1_explained("Barack", ["Bush", "Barack Obama"])["feedback"]
