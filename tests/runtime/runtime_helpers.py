"""Helpers for the runtime tests: hand-built unrolled programs and a fake engine.

The programs are what the compiler produces for tiny sources (typed, unrolled, with
guard/select nodes); tests that need the real compiler build them from source instead.
"""

from __future__ import annotations

from typing import Callable

from promptc.ir import Demo, Function, LlmDef, Message, Model, Node, Param, Program, TimeIndex, Workflow
from promptc.runtime.records import CallRequest, CallResult
from promptc.types import BOOL, TEXT, enum, list_of, record

LABELS = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")


class FakeEngine:
    """The engine interface (`async call(req) -> CallResult`), answering with `fn(messages)`."""

    def __init__(self, fn: Callable[[list[dict]], str] | None = None, error: str | None = None):
        self.fn = fn or (lambda messages: "ok")
        self.error = error
        self.requests: list[CallRequest] = []

    async def call(self, req: CallRequest) -> CallResult:
        self.requests.append(req)
        if self.error:
            return CallResult(text=None, error=self.error)
        text = self.fn(list(req.messages))
        return CallResult(text=text, prompt_tokens=10, completion_tokens=2)


def trec_program(output=enum(*LABELS), demos=(), post=None) -> Program:
    """`classify(question) -> enum` with instruction/format params and a demos param;
    `post` optionally adds a std.text call on the answer."""
    llm = LlmDef(
        name="classify",
        params=(("question", TEXT),),
        returns=output,
        model="task",
        messages=(
            Message("system", "{instruction}\n{answer_format}"),
            Message("user", "Question: {question}"),
        ),
        demos="shots",
        uses=("instruction", "answer_format", "shots"),
    )
    nodes = [
        Node("question", "input", target="question", type=TEXT),
        Node("raw", "llm", args=("question",), target="classify", type=output),
    ]
    functions = ()
    out = "raw"
    if post:
        functions = (Function(name=post, module="std.text", attr=post, params=(("s", TEXT),), returns=TEXT),)
        nodes.append(Node("answer", "call", args=("raw",), target=post, type=TEXT))
        out = "answer"
    return Program(
        file="<test>",
        source_hash="0",
        models=(Model("task", "scripted/test", env="PROMPTC_TEST_NO_SUCH_VAR"),),
        params=(
            Param("instruction", "prompt", trainable=True, role="what to classify", text="Classify the question."),
            Param("answer_format", "prompt", trainable=True, text="Reply with the label only."),
            Param("shots", "demos", trainable=True, demos=tuple(demos), max_demos=4),
        ),
        functions=functions,
        llms=(llm,),
        workflow=Workflow("trec", (("question", TEXT),), output, tuple(nodes), out),
    )


STEP = record(action=TEXT, arg=TEXT)


def agent_program(steps: int = 3) -> Program:
    """An unrolled `loop max N` agent: think -> act, `break if action == "finish"`;
    `obs` is loop-carried (select after each guarded step)."""
    think = LlmDef(
        name="think",
        params=(("question", TEXT), ("obs", TEXT)),
        returns=STEP,
        model="task",
        messages=(Message("system", "{policy}"), Message("user", "Q: {question}\nObservation: {obs}")),
        uses=("policy",),
    )
    act = Function(
        name="act",
        module="std.agents",
        attr="act",
        params=(("action", TEXT), ("arg", TEXT), ("corpus", list_of(TEXT))),
        returns=TEXT,
    )
    nodes = [
        Node("question", "input", target="question", type=TEXT),
        Node("corpus", "input", target="corpus", type=list_of(TEXT)),
        Node("obs_init", "const", target="", type=TEXT),
        Node("finish", "const", target="finish", type=TEXT),
    ]
    obs, alive, stop = "obs_init", None, None
    for s in range(steps):
        t = TimeIndex("agent", s)
        g = None
        if s > 0:
            g = f"alive_{s}"
            args = (alive, stop) if alive else ("true_0", stop)
            if alive is None:
                nodes.append(Node("true_0", "const", target=True, type=BOOL))
            nodes.append(Node(g, "guard", args=args, type=BOOL, time=t))
        nodes += [
            Node(f"step_{s}", "llm", args=("question", obs), target="think", type=STEP, time=t, guard=g),
            Node(f"action_{s}", "field", args=(f"step_{s}",), target="action", type=TEXT, time=t, guard=g),
            Node(f"arg_{s}", "field", args=(f"step_{s}",), target="arg", type=TEXT, time=t, guard=g),
            Node(f"out_{s}", "call", args=(f"action_{s}", f"arg_{s}", "corpus"), target="act", type=TEXT, time=t, guard=g),
            Node(f"stop_{s}", "prim", args=(f"action_{s}", "finish"), target="eq", type=BOOL, time=t, guard=g),
        ]
        new_obs = f"out_{s}"
        if g is not None:
            nodes.append(Node(f"obs_{s}", "select", args=(g, f"out_{s}", obs), type=TEXT, time=t))
            new_obs = f"obs_{s}"
        obs, alive, stop = new_obs, g, f"stop_{s}"
    return Program(
        file="<test>",
        source_hash="0",
        models=(Model("task", "scripted/agent"),),
        params=(Param("policy", "prompt", trainable=True, text="Act with search, lookup or finish."),),
        functions=(act,),
        llms=(think,),
        workflow=Workflow(
            "agent", (("question", TEXT), ("corpus", list_of(TEXT))), TEXT, tuple(nodes), obs
        ),
    )


__all__ = ["FakeEngine", "trec_program", "agent_program", "Demo", "LABELS"]
