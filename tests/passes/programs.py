"""Small programs shared by the pass, printer, verifier and artifact tests (built with
`promptc.build.ProgramBuilder`)."""

from __future__ import annotations

from promptc.build import ProgramBuilder
from promptc.ir import Program
from promptc.types import TEXT, Type

FILE = "t.pflow"


def trec(file: str = FILE, returns: Type = TEXT) -> Program:
    """input -> llm classify (instruction, answer_format, shots) -> strip -> first_word."""
    b = ProgramBuilder(file)
    b.model("task")
    b.param("instruction", trainable=True, text="Classify the question.", role="what to classify")
    b.param("answer_format", trainable=True, text="Reply with the label only.")
    b.param("shots", kind="demos", trainable=True, max_demos=4)
    b.function("strip", params=[("s", TEXT)], returns=TEXT, doc="Removes whitespace.")
    b.function("first_word", params=[("s", TEXT)], returns=TEXT, doc="Keeps the first word.")
    b.function("exact_match", module="std.metrics")
    b.llm("classify", [("question", TEXT)], TEXT, system="{instruction}\n{answer_format}",
          user="Question: {question}", demos="shots")
    w = b.workflow("trec", [("question", TEXT)], returns)
    q = w.input("question")
    raw = w.llm("classify", q, name="raw")
    s = w.call("strip", raw, name="s")
    w.ret(w.call("first_word", s, name="out"))
    b.train_spec("exact_match")
    return b.build()
