"""TREC-6 question classification as a decorated Python workflow.

The twin of `trec.pflow`: both compile to the same IR (a test checks it).

    from examples.trec.trec_workflow import trec
    print(promptc.compile_workflow(trec))      # or trec.program
"""

from typing import Literal

import promptc

Label = Literal["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]

exact_match = promptc.use("std.metrics", "exact_match")

task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")
teacher = promptc.model("PROMPTC_TEACHER_MODEL", default="local/default")

instruction = promptc.prompt(
    "Classify the question by the kind of answer it asks for:\n"
    "ABBR (an abbreviation or its expansion), DESC (a description, definition or reason),\n"
    "ENTY (an entity: animal, color, product, event, ...), HUM (a person or group),\n"
    "LOC (a location) or NUM (a number, date, amount or other quantity).",
    trainable=True,
    role="the task: which kind of answer the question asks for",
)
answer_format = promptc.prompt(
    "Answer with the label only: ABBR, DESC, ENTY, HUM, LOC or NUM.",
    trainable=True,
    role="how the answer must be written",
)
shots = promptc.demos(max=4, trainable=True, role="worked examples of questions and their labels")


@promptc.llm(via=task, system="{instruction}\n{answer_format}", demos=shots, user="Question: {question}")
def classify(question: str) -> Label: ...


@promptc.workflow(train=promptc.train(metric=exact_match, answer="label", teacher=teacher))
def trec(question: str) -> Label:
    label = classify(question)
    return label
