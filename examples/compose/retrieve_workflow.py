"""Two hops of query -> BM25 retrieve -> notes, as a decorated workflow: the twin of
`retrieve.pflow`, called by `compose_workflow.py`."""

from typing import Any

import promptc

passages, retrieve = promptc.use("std.retrieval", "passages", "retrieve")
join = promptc.use("std.text", "join")

task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")

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


@promptc.llm(via=task, system="{query_instruction}", user="Question: {question}\nNotes:\n{notes}\nSearch query:")
def make_query(question: str, notes: str) -> str: ...


@promptc.llm(
    via=task,
    system="{notes_instruction}",
    user="Question: {question}\nNotes:\n{notes}\nPassages:\n{evidence}\nUpdated notes:",
)
def write_notes(question: str, notes: str, evidence: str) -> str: ...


@promptc.workflow
def multihop_retrieve(question: str, context: Any) -> str:
    corpus = passages(context)
    notes = ""
    for hop in range(2):
        q = make_query(question, notes)
        found = retrieve(q, corpus, 1)
        notes = write_notes(question, notes, join(found, "\n"))
    return notes
