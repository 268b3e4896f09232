"""Backward: selective gradients, one call per llm node per failing sample, JSON with a
per-feed fallback, passthrough annotations, time order across loop steps, skipped nodes."""

from __future__ import annotations

import asyncio
import json

from promptc.optim.rules import parse_feedback
from promptc.optim.backward import Gradients, backward
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import forward
from tests.optim.helpers import Engine, kind, trec_like, two_step

BATCH = [
    {"question": "Who wrote Hamlet?", "answer": "HUM"},
    {"question": "Where is Rome?", "answer": "LOC"},
    {"question": "Who painted it?", "answer": "HUM"},
    {"question": "How many legs?", "answer": "NUM"},
]


def run(coro):
    return asyncio.run(coro)


def json_backward(req):
    if kind(req) == "backward":
        keys = req.response_format["required"]
        return json.dumps({k: f"{k}: say that places are LOC" for k in keys})
    return " HUM because it is a person"


def test_only_failing_samples_cost_backward_calls_one_per_llm_node():
    program = trec_like()
    engine = Engine(json_backward)
    traces = run(forward(program, BATCH, engine))
    scores = score(program, traces, BATCH)
    assert scores == [1.0, 0.0, 1.0, 0.0]
    grads = run(backward(program, traces, BATCH, scores, engine))
    assert engine.count("backward") == 2 == grads.calls  # 2 failing samples x 1 llm node
    assert grads.samples == (1, 3)
    assert set(grads.params()) == {"instruction", "answer_format", "shots"}
    assert {g.sample for g in grads.items} == {1, 3}
    # the one call asked for every feed, as a JSON schema
    req = next(r for r in engine.requests if r.phase == "backward")
    assert req.response_format["required"] == ["instruction", "answer_format", "shots"]
    prompt = req.messages[1]["content"]
    # the llm's rendered messages, its output, the loss and the functional annotations
    assert "Question: Where is Rome?" in prompt and "HUM because it is a person" in prompt
    assert "Expected: LOC" in prompt and "through `first_word`" in prompt and "through `strip`" in prompt
    assert "role: what to classify" in prompt


def test_threshold_selects_samples():
    program = trec_like()
    engine = Engine(json_backward)
    traces = run(forward(program, BATCH, engine))
    grads = run(backward(program, traces, BATCH, [1.0, 0.4, 0.9, 0.6], engine, threshold=0.5))
    assert grads.samples == (1,) and engine.count("backward") == 1


def test_unparsable_json_falls_back_to_one_call_per_feed():
    program = trec_like()

    def fn(req):
        if kind(req) == "backward":
            if req.response_format is not None:
                return "Sure! The instruction should mention locations."  # not JSON
            return "Mention that places are LOC."
        return "HUM"

    engine = Engine(fn)
    traces = run(forward(program, BATCH[:2], engine))
    scores = score(program, traces, BATCH[:2])
    grads = run(backward(program, traces, BATCH[:2], scores, engine))
    assert engine.count("backward") == 1 + 3 and grads.fallbacks == 1
    assert [g.text for g in grads.for_param("instruction")] == ["Mention that places are LOC."]


def test_partial_json_asks_only_for_the_missing_feeds():
    program = trec_like()

    def fn(req):
        if kind(req) == "backward":
            if req.response_format is not None:
                return 'Here: {"instruction": "name the LOC rule"}'
            return "fine"
        return "HUM"

    engine = Engine(fn)
    traces = run(forward(program, BATCH[:2], engine))
    grads = run(backward(program, traces, BATCH[:2], score(program, traces, BATCH[:2]), engine))
    assert engine.count("backward") == 1 + 2
    assert grads.for_param("instruction")[0].text == "name the LOC rule"


def test_failed_backward_calls_never_crash():
    program = trec_like()
    engine = Engine(lambda req: None if kind(req) == "backward" else "HUM")
    traces = run(forward(program, BATCH, engine))
    grads = run(backward(program, traces, BATCH, score(program, traces, BATCH), engine))
    assert grads.items == () and grads.calls == 2 * (1 + 3)


def test_two_step_loop_gradients_arrive_in_time_order():
    program = two_step()

    def fn(req):
        if kind(req) == "backward":
            step = "step 1" if "step 1)" in req.messages[1]["content"] else "step 0"
            keys = req.response_format["required"]
            return json.dumps({k: f"{step} feedback for {k}" for k in keys})
        return "x " + req.messages[-1]["content"]

    engine = Engine(fn)
    batch = [{"q": "a", "answer": "A"}]
    traces = run(forward(program, batch, engine))
    grads = run(backward(program, traces, batch, score(program, traces, batch), engine))
    assert engine.count("backward") == 2  # one call per llm node (step) per failing sample
    g = grads.for_param("style")
    assert [x.step for x in g] == [0, 1]
    assert g[0].text.startswith("step 0") and g[1].text.startswith("step 1")
    # step 0's node received the feedback that step 1 sent to its input value
    step0 = [r for r in engine.requests if r.phase == "backward" and "step 0)" in r.messages[1]["content"]][0]
    assert "step 1 feedback for refine@r#0" in step0.messages[1]["content"]


def test_nodes_not_executed_are_skipped():
    program = two_step()
    engine = Engine(lambda req: json.dumps({k: "fb" for k in req.response_format["required"]}) if kind(req) == "backward" else "y")
    batch = [{"q": "a", "answer": "A"}]
    traces = run(forward(program, batch, engine))
    # mark step 1 as not executed (what a guard after `break` gives) and route feedback to it
    from attrs import evolve

    t = traces[0]
    recs = tuple(evolve(r, executed=False) if r.name == "refine@r#1" else r for r in t.records)
    traces = [evolve(t, records=recs)]
    grads = run(backward(program, traces, batch, [0.0], engine))
    assert grads.items == () and engine.count("backward") == 0


def test_the_backward_program_is_pruned_at_compile_time_inputs_get_no_feedback():
    program = trec_like()
    assert "question" not in {g.node for g in program.backward} and "raw.back" in {g.name for g in program.backward}


def test_the_interpreter_runs_the_backward_program_each_node_once():
    from promptc.optim.backward import Backward

    program = trec_like()
    engine = Engine(json_backward)
    traces = run(forward(program, BATCH[1:2], engine))
    visited = []

    class Counting(Backward):
        def dispatch(self, node, frame):
            visited.append(node.name)
            return super().dispatch(node, frame)

    interp = Counting(program, engine, model="scripted/x")
    frame = run(interp.backward(traces[0], "wrong label"))
    assert visited == [g.name for g in program.backward]
    assert frame.values["out.grad"] == ["wrong label"]
    assert "through `first_word`" in frame.values["s.grad"][0] and frame.calls == 1
    assert [p for p, _, _ in frame.gradients] == ["instruction", "answer_format", "shots"]


def test_parse_feedback_shapes():
    feeds = ["a", "b"]
    assert parse_feedback('{"a": "x", "b": "y"}', feeds) == {"a": "x", "b": "y"}
    assert parse_feedback('```json\n{"a": "x"}\n```', feeds) == {"a": "x"}
    assert parse_feedback('noise {"a": {"k": 1}} noise', feeds) == {"a": '{"k": 1}'}
    assert parse_feedback("no json", feeds) == {}
    assert parse_feedback(None, feeds) == {}


def test_gradients_group_by_sample():
    from promptc.optim.backward import Gradient

    g = Gradients(items=(Gradient("p", 0, "a", "n"), Gradient("p", 2, "b", "n"), Gradient("q", 0, "c", "n")))
    assert list(g.by_sample("p")) == [0, 2] and g.params() == ("p", "q")


def test_overriding_one_backward_handler_changes_that_op_only():
    from promptc.optim.backward import Backward

    program = trec_like()
    engine = Engine(json_backward)
    traces = run(forward(program, BATCH[1:2], engine))

    class Terse(Backward):
        async def op_loss(self, g, frame):
            return {g.node: "too long"}

    frame = run(Terse(program, engine, model="scripted/x").backward(traces[0], "the full verdict"))
    assert frame.values["out.grad"] == ["too long"]  # the override ran ...
    assert "too long" in frame.values["raw.grad"][0] and frame.calls == 1  # ... and the other handlers as before
