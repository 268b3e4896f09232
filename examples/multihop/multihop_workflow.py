"""Multi-hop question answering on HotpotQA as a decorated Python workflow.

The twin of `multihop.pflow`: both compile to the same IR (a test checks it). The
`for hop in range(2)` loop is a `for hop in 0..2` loop; `notes`, assigned before it and
inside it, is carried from one hop to the next.
"""

from typing import Any

import promptc

passages, retrieve = promptc.use("std.retrieval", "passages", "retrieve")
join = promptc.use("std.text", "join")
f1_explained = promptc.use("std.metrics", "f1_explained")

task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")
teacher = promptc.model("PROMPTC_TEACHER_MODEL", default="local/default")

query_instruction = promptc.prompt(
    "Write a short search query that finds the next fact needed to answer the question.\n"
    "Use names and words from the question and the notes; do not repeat a fact already in the notes.",
    trainable=True,
    role="how to write the next search query from the question and the notes",
)
notes_instruction = promptc.prompt(
    "Update the notes with the facts from the passages that help answer the question.\n"
    "Keep every useful fact already in the notes; be brief; copy names and numbers exactly.",
    trainable=True,
    role="how to update the notes with the retrieved passages",
)
answer_instruction = promptc.prompt(
    "Answer the question from the notes. Reply with the answer only: a name, a number or a short phrase, not a sentence.",
    trainable=True,
    role="how to answer from the notes",
)
query_shots = promptc.demos(max=2, trainable=True, role="worked examples of search queries")
answer_shots = promptc.demos(max=2, trainable=True, role="worked examples of answers from notes")


@promptc.llm(via=task, system="{query_instruction}", demos=query_shots, user="Question: {question}\nNotes:\n{notes}\nSearch query:")
def make_query(question: str, notes: str) -> str: ...


@promptc.llm(
    via=task,
    system="{notes_instruction}",
    user="Question: {question}\nNotes:\n{notes}\nPassages:\n{evidence}\nUpdated notes:",
)
def write_notes(question: str, notes: str, evidence: str) -> str: ...


@promptc.llm(via=task, system="{answer_instruction}", demos=answer_shots, user="Question: {question}\nNotes:\n{notes}\nAnswer:")
def answer(question: str, notes: str) -> str: ...


@promptc.workflow(
    train=promptc.train(metric=f1_explained, answer="answer", teacher=teacher, supports={"found": "supporting_titles"})
)
def multihop(question: str, context: Any) -> str:
    corpus = passages(context)
    notes = ""
    for hop in range(2):
        q = make_query(question, notes)
        found = retrieve(q, corpus, 1)
        notes = write_notes(question, notes, join(found, "\n"))
    return answer(question, notes)
