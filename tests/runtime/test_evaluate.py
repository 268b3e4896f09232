"""Scoring: metrics that return a number, a bool, or a score with an explanation."""

from __future__ import annotations

import json

from promptc.compiler import compile_source
from promptc.runtime.evaluate import Score, score
from promptc.runtime.records import Trace

SRC = """
model task = "scripted/echo"
llm ask(q: text) -> text via task { user "{q}" }
workflow w(q: text) -> text { return ask(q) }
"""


def traces(*outputs):
    return [Trace(inputs=(("q", "x"),), records=(), output=o, error=None if o is not None else "t1: failed") for o in outputs]


def test_a_metric_that_explains_gives_scores_with_feedback():
    program = compile_source(SRC, "w.pflow")

    def judge(got, expected):
        return {"score": 1.0 if got == expected else 0.25, "feedback": f"wanted {expected}"}

    batch = [{"answer": "a"}, {"answer": "b"}, {"answer": "c"}]
    s = score(program, traces("a", "x", None), batch, judge)
    assert s == [1.0, 0.25, 0.0] and all(isinstance(x, Score) for x in s)
    assert [x.feedback for x in s] == ["wanted a", "wanted b", ""]  # a failed trace is not judged
    assert json.loads(json.dumps(s)) == [1.0, 0.25, 0.0]  # still plain numbers when saved


def test_plain_and_broken_metrics():
    program = compile_source(SRC, "w.pflow")
    batch = [{"answer": "a"}, {"answer": "b"}]
    assert score(program, traces("a", "b"), batch, lambda g, e: g == "a") == [1.0, 0.0]
    s = score(program, traces("a", "b"), batch, lambda g, e: {"feedback": "no score"})
    assert s == [0.0, 0.0] and [x.feedback for x in s] == ["", ""]
