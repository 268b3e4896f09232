"""Question routing as a decorated Python workflow: the twin of `router.pflow` (a test
checks that both compile to the same IR)."""

from typing import Literal

import promptc

f1 = promptc.use("std.metrics", "f1")

task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")

route_instruction = promptc.prompt(
    "Decide what kind of question this is.\n"
    "comparison: it compares two named things (which is older, who was also an actor, are both ...).\n"
    "bridge: it asks about something reached through another entity (the director of the film that ...).\n"
    "Reply with one word: comparison or bridge.",
    role="how to tell the two kinds of questions apart",
)
compare_instruction = promptc.prompt(
    "The question compares two things. Find the fact about each in the evidence, compare them,\n"
    "and reply with the name of the one that fits, exactly as written in the question.",
    trainable=True,
    role="how to answer a question that compares two things",
)
bridge_instruction = promptc.prompt(
    "The question goes through a linking entity. Find that entity in the evidence, then the fact\n"
    "the question asks about it. Reply with the answer only: a name, a number or a short phrase.",
    trainable=True,
    role="how to answer a question that goes through a linking entity",
)


@promptc.llm(via=task, system="{route_instruction}", user="Question: {question}\nKind:")
def route(question: str) -> Literal["comparison", "bridge"]: ...


@promptc.llm(via=task, system="{compare_instruction}", user="Evidence:\n{evidence}\nQuestion: {question}\nAnswer:")
def compare(question: str, evidence: str) -> str: ...


@promptc.llm(via=task, system="{bridge_instruction}", user="Evidence:\n{evidence}\nQuestion: {question}\nAnswer:")
def bridge(question: str, evidence: str) -> str: ...


@promptc.workflow(train=promptc.train(metric=f1, answer="answer"))
def router(question: str, evidence: str) -> str:
    reply = ""
    if route(question) == "comparison":
        reply = compare(question, evidence)
    else:
        reply = bridge(question, evidence)
    return reply
