"""Shared machinery of the example tests: one scripted model per example that plays the
task model, the teacher, the backward engine and the optimizer, told apart by the system
message of the request (the training meta-prompts have fixed system messages).

The examples select their models through `PROMPTC_TASK_MODEL` / `PROMPTC_TEACHER_MODEL`;
with no `backward` / `optimizer` model in their `train` block, the backward engine and the
optimizer use the task model too. So a test sets both variables to "scripted/<name>" and
every call of forward, backward, propose, validate and demos goes to one `Brain`.

A `Brain` is right on a task only when the trainable prompt states a `RULE`; its backward
engine names that rule (and echoes which functional nodes the feedback went through, from
the `[through `fn`: ...]` annotations it was shown); its optimizer writes the rule into
the current value. Every prompt it receives is recorded, so a test can read what the
backward engine and the optimizer were shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from promptc.optim import templates
from promptc.runtime import scripted

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

BACKWARD_SYSTEM = templates.render("backward_system")
OPTIMIZER_SYSTEM = templates.render("optimizer_system")


def rows(name: str, split: str) -> list[dict]:
    with open(EXAMPLES / name / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def section(text: str, header: str) -> str:
    """The body of a "## header" section of a meta-prompt ('' when absent)."""
    m = re.search(rf"^## {re.escape(header)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


class Brain:
    """One scripted model for one example (see the module doc).

    task: fn(system, user) -> str, the example's task model.
    rule: the text the trainable prompt must contain for `task` to be right.
    """

    def __init__(self, name: str, task: Callable[[str, str], str], rule: str):
        self.name = name
        self.task_fn = task
        self.rule = rule
        self.task_prompts: list[tuple[str, str]] = []
        self.backward_prompts: list[str] = []
        self.optimizer_prompts: list[str] = []

    def __call__(self, messages: list[dict]) -> str:
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        user = messages[-1]["content"]
        if system == BACKWARD_SYSTEM:
            self.backward_prompts.append(user)
            return self.backward(user)
        if system == OPTIMIZER_SYSTEM:
            self.optimizer_prompts.append(messages[1]["content"])
            return self.optimizer(messages[1]["content"])
        self.task_prompts.append((system, user))
        return self.task_fn(system, user)

    def backward(self, user: str) -> str:
        """Feedback for every input asked about: the missing rule, and the functional
        nodes the feedback on this step's output came through."""
        via = sorted(set(re.findall(r"\[through `(\w+)`", section(user, "Feedback on its output"))))
        path = f" (the error came back through {', '.join(via)})" if via else ""
        keys = list(json.loads(user.strip().splitlines()[-1]))
        return json.dumps({k: f"The answer was wrong{path}. State the rule: {self.rule}" for k in keys})

    def optimizer(self, user: str) -> str:
        current = re.search(r"<current>\n(.*?)\n</current>", user, re.S).group(1)
        if self.rule in section(user, "Feedback from failing examples"):
            return f"<proposal>{current}\n{self.rule}</proposal>"
        return "<proposal>No idea.</proposal>"

    def register(self, monkeypatch) -> str:
        model = scripted.register(self.name, self)
        monkeypatch.setenv("PROMPTC_TASK_MODEL", model)
        monkeypatch.setenv("PROMPTC_TEACHER_MODEL", model)
        return model

    def optimizer_prompt_for(self, param: str) -> list[str]:
        return [p for p in self.optimizer_prompts if f"## Prompt to improve: `{param}`" in p]
