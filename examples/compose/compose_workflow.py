"""Composition as decorated Python: the twin of `compose.pflow` (a test checks that both
compile to the same IR). `promptc.use` binds the decorated workflow of another file as
`use "retrieve.pflow" { ... }` does; a decorated workflow imported with a plain Python
`import` and called in the body is inlined the same way."""

from typing import Any

import promptc

multihop_retrieve = promptc.use("retrieve_workflow.py", "multihop_retrieve")
f1 = promptc.use("std.metrics", "f1")

task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")

answer_instruction = promptc.prompt(
    "Answer the question from the notes. Reply with the answer only: a name, a number or a short phrase, not a sentence.",
    trainable=True,
    role="how to answer from the notes",
)


@promptc.llm(via=task, system="{answer_instruction}", user="Question: {question}\nNotes:\n{notes}\nAnswer:")
def answer(question: str, notes: str) -> str: ...


@promptc.workflow(train=promptc.train(metric=f1, answer="answer"))
def compose(question: str, context: Any) -> str:
    notes = multihop_retrieve(question, context)
    return answer(question, notes)
