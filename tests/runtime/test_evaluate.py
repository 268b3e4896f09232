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


JUDGED = """
model task = "scripted/echo"
param instr: prompt trainable "how to answer" = "Answer."
param rubric: prompt "how to judge" = "Judge the answer against the expected one."
llm ask(q: text) -> text via task { system "{instr}"; user "{q}" }
llm judge(got: text, expected: text) -> {score: float, feedback: text} via task {
  system "{rubric}"
  user "Answer: {got}\\nExpected: {expected}"
}
workflow w(q: text) -> text { return ask(q) }
train w { metric judge }
"""


class JudgeEngine:
    """The task model echoes the question; the judge compares, and explains in words."""

    def __init__(self, broken: bool = False):
        self.broken = broken
        self.judged: list[str] = []

    async def call(self, req):
        from promptc.runtime.records import CallResult

        system, user = req.messages[0]["content"], req.messages[-1]["content"]
        if system.startswith("Judge"):
            self.judged.append(user)
            if self.broken:
                return CallResult(text="no json here")
            got, expected = user.split("\n")[0][8:], user.split("\n")[1][10:]
            ok = got == expected
            return CallResult(text=json.dumps({"score": 1.0 if ok else 0.0, "feedback": "right" if ok else f"say {expected}"}))
        return CallResult(text=user)


def test_an_llm_judge_scores_and_explains():
    import asyncio

    import pytest

    from promptc.runtime.evaluate import MetricError, ascore
    from promptc.runtime.interpreter import run_forward

    program = compile_source(JUDGED, "w.pflow")
    assert program.trainable() == (program.param("instr"),)
    batch = [{"q": "a", "answer": "a"}, {"q": "b", "answer": "c"}]
    engine = JudgeEngine()
    traces = run_forward(program, batch, engine)
    s = asyncio.run(ascore(program, traces, batch, engine=engine))
    assert s == [1.0, 0.0] and [x.feedback for x in s] == ["right", "say c"]
    assert [u.split("\n\n")[0] for u in engine.judged] == ["Answer: a\nExpected: a", "Answer: b\nExpected: c"]
    with pytest.raises(MetricError, match="is an llm"):
        score(program, traces, batch)
    # a judge that answers garbage: a 0 score with the reason, not a crash
    bad = asyncio.run(ascore(program, traces, batch, engine=JudgeEngine(broken=True)))
    assert bad == [0.0, 0.0] and all(x.feedback.startswith("the judge's answer did not parse") for x in bad)


def test_the_judges_feedback_starts_the_backward_pass(tmp_path):
    import asyncio

    from promptc.optim.backward import backward
    from promptc.runtime.evaluate import ascore
    from promptc.runtime.interpreter import run_forward

    program = compile_source(JUDGED, "w.pflow")
    batch = [{"q": "b", "answer": "c"}]
    engine = JudgeEngine()
    traces = run_forward(program, batch, engine)
    s = asyncio.run(ascore(program, traces, batch, engine=engine))
    grads = asyncio.run(backward(program, traces, batch, s, _Backward()))
    ((_i, loss),) = grads.losses
    assert loss.endswith("Got: b\nThe metric explains: say c")


class _Backward:
    async def call(self, req):
        from promptc.runtime.records import CallResult

        keys = list(json.loads(req.messages[-1]["content"].strip().splitlines()[-1]))
        return CallResult(text=json.dumps({k: "fix" for k in keys}))


def test_judge_misuse_is_a_compile_error():
    import pytest

    from promptc.errors import CompileError

    for old, new, msg in [
        ('param rubric: prompt "how', 'param rubric: prompt trainable "how', "uses the trainable param 'rubric'"),
        ("-> {score: float, feedback: text} via", "-> text via", "must return a number or {score: float, feedback: text}"),
        ("llm judge(got: text, expected: text)", "llm judge(got: text)", "must take 2 arguments"),
    ]:
        with pytest.raises(CompileError, match=msg.replace("{", r"\{").replace("}", r"\}")):
            compile_source(JUDGED.replace(old, new).replace("{expected}", "x"), "w.pflow")
