"""Fan-out on HotpotQA as a decorated Python workflow: the twin of `fanout.pflow` (a test
checks that both compile to the same IR). `for passage in found[:3]:` is the fan-out
`for passage in found max 3`."""

from typing import Any

import promptc

passages, retrieve = promptc.use("std.retrieval", "passages", "retrieve")
join = promptc.use("std.text", "join")
f1 = promptc.use("std.metrics", "f1")

task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")

summary_instruction = promptc.prompt(
    "Summarise the passage in one sentence, keeping only what helps answer the question.\n"
    "Copy names, dates and numbers exactly. If nothing in it helps, reply: nothing relevant.",
    trainable=True,
    role="how to summarise one passage for the question",
)
answer_instruction = promptc.prompt(
    "Answer the question from the summaries. Reply with the answer only: a name, a number or a short phrase, not a sentence.",
    trainable=True,
    role="how to answer from the summaries",
)


@promptc.llm(via=task, system="{summary_instruction}", user="Question: {question}\nPassage: {passage}\nSummary:")
def summarize(question: str, passage: str) -> str: ...


@promptc.llm(via=task, system="{answer_instruction}", user="Question: {question}\nSummaries:\n{summaries}\nAnswer:")
def answer(question: str, summaries: str) -> str: ...


@promptc.workflow(train=promptc.train(metric=f1, answer="answer"))
def fanout(question: str, context: Any) -> str:
    found = retrieve(question, passages(context), 3)
    summaries = []
    for passage in found[:3]:
        summaries = summaries + [summarize(question, passage)]
    return answer(question, join(summaries, "\n"))
