"""A scripted training task: the task model is right only when the instruction states a rule.

- task model: answers "LOC" to a "Where ..." question only when its system prompt says
  "places are LOC"; otherwise "HUM" (right for "Who ..." questions).
- backward engine: names the missing rule for every feed it is asked about.
- optimizer: writes the rule named by the feedback into the current value.
Each callable records the messages it saw, so tests can count calls and read prompts.
"""

from __future__ import annotations

import json
import re

from promptc.runtime import scripted

RULE = "places are LOC"

SOURCE = '''
use std.text { strip }
use std.metrics { exact_match }

model task = "scripted/t_task"
model critic = "scripted/t_backward"
model writer = "scripted/t_optimizer"

param instruction: prompt trainable "what to classify" = "Classify the question as HUM or LOC."
param answer_format: prompt trainable "how to write the answer" = "Reply with the label only."

llm classify(question: text) -> text via task {
  system "{instruction}\\n{answer_format}"
  user "Question: {question}"
}

workflow trec(question: text) -> text {
  let raw = classify(question)
  return strip(raw)
}

train trec { metric exact_match; backward critic; optimizer writer }
'''

WHO = ["Who wrote Hamlet?", "Who painted the Mona Lisa?", "Who discovered radium?", "Who founded Rome?",
       "Who won the race?", "Who built the pyramids?"]
WHERE = ["Where is Paris?", "Where is the Nile?", "Where is Everest?", "Where is Kyoto?",
         "Where is Lima?", "Where is Oslo?"]


def data():
    rows = [{"question": q, "answer": "HUM"} for q in WHO] + [{"question": q, "answer": "LOC"} for q in WHERE]
    train = rows[0:4] + rows[6:10]
    val = rows[4:6] + rows[10:12]
    return train, val


class Script:
    def __init__(self, prefix: str = "t"):
        self.prefix = prefix
        self.calls = {"task": 0, "backward": 0, "optimizer": 0}
        self.optimizer_prompts: list[str] = []
        self.backward_prompts: list[str] = []

    def task(self, messages):
        self.calls["task"] += 1
        system = messages[0]["content"]
        q = messages[-1]["content"]
        if "Where" in q:
            return " LOC " if RULE in system else " HUM "
        return " HUM "

    def backward(self, messages):
        self.calls["backward"] += 1
        user = messages[-1]["content"]
        self.backward_prompts.append(user)
        keys = list(json.loads(user.strip().splitlines()[-1]))
        return json.dumps({k: f"State the rule: {RULE}." for k in keys})

    def optimizer(self, messages):
        self.calls["optimizer"] += 1
        user = messages[1]["content"]
        self.optimizer_prompts.append(user)
        current = re.search(r"<current>\n(.*?)\n</current>", user, re.S).group(1)
        if RULE in user.split("## Feedback", 1)[1]:
            return f"<proposal>{current} Rule: {RULE}.</proposal>"
        return "<proposal>No idea.</proposal>"

    def register(self):
        scripted.register(f"{self.prefix}_task", self.task)
        scripted.register(f"{self.prefix}_backward", self.backward)
        scripted.register(f"{self.prefix}_optimizer", self.optimizer)
        return self

    def total(self) -> int:
        return sum(self.calls.values())
