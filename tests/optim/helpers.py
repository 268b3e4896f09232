"""Helpers for the training tests: a counting fake engine and tiny compiled programs.

`Engine(fn)` answers every request with `fn(req)` (a str) and records the requests, so a
test can count calls per phase. Programs come from hand-built IR (promptc.build.ProgramBuilder)
run through the real pass pipeline, so their backward programs are the real ones.
"""

from __future__ import annotations

import json
from typing import Callable

from promptc.optim import templates
from promptc.compiler import run_passes
from promptc.ir import Program
from promptc.runtime.records import CallRequest, CallResult
from promptc.types import TEXT
from promptc.build import ProgramBuilder

BACKWARD_SYSTEM = templates.render("backward_system")
OPTIMIZER_SYSTEM = templates.render("optimizer_system")


class Engine:
    def __init__(self, fn: Callable[[CallRequest], str | None]):
        self.fn = fn
        self.requests: list[CallRequest] = []

    async def call(self, req: CallRequest) -> CallResult:
        self.requests.append(req)
        text = self.fn(req)
        if text is None:
            return CallResult(text=None, error="scripted failure")
        return CallResult(text=text, prompt_tokens=len(json.dumps(req.messages).split()), completion_tokens=len(text.split()))

    def count(self, phase: str) -> int:
        return sum(1 for r in self.requests if r.phase == phase)


def kind(req: CallRequest) -> str:
    system = req.messages[0]["content"] if req.messages and req.messages[0]["role"] == "system" else ""
    if system == BACKWARD_SYSTEM:
        return "backward"
    if system == OPTIMIZER_SYSTEM:
        return "optimizer"
    return "task"


def trec_like(model: str = "scripted/x") -> Program:
    """question -> classify (instruction, answer_format, shots) -> strip -> first_word."""
    b = ProgramBuilder()
    b.model("task", model)
    b.param("instruction", trainable=True, text="Classify the question.", role="what to classify")
    b.param("answer_format", trainable=True, text="Reply with the label only.", role="how to write the answer")
    b.param("shots", kind="demos", trainable=True, max_demos=2)
    b.function("strip", params=[("s", TEXT)], returns=TEXT)
    b.function("first_word", params=[("s", TEXT)], returns=TEXT)
    b.function("exact_match", module="std.metrics")
    b.llm("classify", [("question", TEXT)], TEXT, system="{instruction}\n{answer_format}",
          user="Question: {question}", demos="shots")
    w = b.workflow("trec", [("question", TEXT)], TEXT)
    q = w.input("question")
    raw = w.llm("classify", q, name="raw")
    s = w.call("strip", raw, name="s")
    w.ret(w.call("first_word", s, name="out"))
    b.train_spec("exact_match")
    return run_passes(b.build())


def two_step(model: str = "scripted/x") -> Program:
    """for i in 0..2 { q = refine(q) } with a trainable `style` prompt: the same param at two steps."""
    b = ProgramBuilder()
    b.model("task", model)
    b.param("style", trainable=True, text="Rewrite the text.", role="how to rewrite")
    b.function("exact_match", module="std.metrics")
    b.llm("refine", [("text", TEXT)], TEXT, system="{style}", user="Text: {text}")
    w = b.workflow("wf", [("q", TEXT)], TEXT)
    q = w.input("q")
    lb = w.loop("r", "for", 2, carried={"q": q})
    x = lb.llm("refine", lb.ph("q"))
    lb.update("q", x)
    res = lb.end()
    w.ret(res["q"])
    b.train_spec("exact_match")
    return run_passes(b.build())
