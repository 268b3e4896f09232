"""The forward interpreter on hand-built unrolled programs with a fake engine."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from runtime_helpers import LABELS, FakeEngine, agent_program, trec_program

from promptc.ir import Demo, Function, Node, Program, Workflow
from promptc.runtime.interpreter import UPSTREAM, ProgramError, forward, run_forward
from promptc.types import INT, TEXT, record


def classify_by_keyword(messages):
    q = messages[-1]["content"]
    return "Label: HUM." if "Who" in q else "LOC"


def test_llm_node_renders_calls_and_parses_enum():
    eng = FakeEngine(classify_by_keyword)
    traces = run_forward(trec_program(), [{"question": "Who wrote Hamlet?"}, {"question": "Where is Rome?"}], eng)
    assert [t.output for t in traces] == ["HUM", "LOC"]
    assert all(t.ok for t in traces)
    rec = traces[0].record("raw")
    assert rec.raw == "Label: HUM."
    assert rec.messages[0] == {"role": "system", "content": "Classify the question.\nReply with the label only."}
    assert rec.messages[-1] == {"role": "user", "content": "Question: Who wrote Hamlet?"}
    assert rec.prompt_tokens == 10 and rec.completion_tokens == 2
    req = eng.requests[0]
    assert req.choices == LABELS and req.model == "scripted/test" and req.phase == "forward"


def test_phase_is_passed_to_requests():
    eng = FakeEngine(lambda m: "NUM")
    run_forward(trec_program(), [{"question": "How many?"}], eng, phase="validate")
    assert eng.requests[0].phase == "validate"


def test_unparsable_answer_is_a_sample_error_with_raw_text():
    eng = FakeEngine(lambda m: "I think it is a person" if "Who" in m[-1]["content"] else "NUM")
    traces = run_forward(trec_program(post="lower"), [{"question": "Who?"}, {"question": "How many?"}], eng)
    bad, good = traces
    assert not bad.ok and bad.output is None
    assert bad.error.startswith("raw: answer is not one of ABBR")
    assert bad.record("raw").raw == "I think it is a person"
    assert bad.record("answer").error == UPSTREAM
    assert good.ok and good.output == "num"


def test_call_error_is_recorded():
    traces = run_forward(trec_program(), [{"question": "Q"}], FakeEngine(error="timeout after 3 attempts"))
    assert traces[0].error == "raw: model call failed: timeout after 3 attempts"


def test_function_exception_is_a_sample_error(tmp_path):
    mod = tmp_path / "tools.py"
    mod.write_text("def boom(s: str) -> str:\n    if 'x' in s:\n        raise ValueError('bad x')\n    return s.upper()\n")
    p = trec_program(output=TEXT)
    p = Program(
        file=str(tmp_path / "prog.pflow"),
        source_hash="0",
        models=p.models,
        params=p.params,
        functions=(Function("boom", "tools.py", "boom"),),
        llms=p.llms,
        workflow=Workflow(
            "w",
            p.workflow.inputs,
            TEXT,
            p.workflow.nodes + (Node("b", "call", args=("raw",), target="boom", type=TEXT),),
            "b",
        ),
    )
    eng = FakeEngine(lambda m: m[-1]["content"])
    ok, bad = run_forward(p, [{"question": "abc"}, {"question": "xyz"}], eng)
    assert ok.output == "QUESTION: ABC"
    assert bad.error == "b: boom() raised ValueError: bad x"


def test_missing_input_is_a_sample_error():
    (t,) = run_forward(trec_program(), [{}], FakeEngine())
    assert t.error == "question: missing input 'question'"
    assert t.record("raw").error == UPSTREAM


def test_demos_are_rendered_before_last_user_message():
    demos = (Demo((("question", "Who is Bach?"),), "HUM"), Demo((("question", "What is NASA?"),), "ABBR"))
    eng = FakeEngine(lambda m: "DESC")
    run_forward(trec_program(demos=demos), [{"question": "Why?"}], eng)
    msgs = eng.requests[0].messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[1]["content"] == "Question: Who is Bach?" and msgs[2]["content"] == "HUM"
    assert msgs[-1]["content"] == "Question: Why?"


def test_record_output_gets_schema_and_json_instruction():
    out = record(label=TEXT, confidence=INT)
    eng = FakeEngine(lambda m: 'Sure! ```json\n{"label": "HUM", "confidence": "3"}\n```')
    (t,) = run_forward(trec_program(output=out), [{"question": "Who?"}], eng)
    assert t.output == {"label": "HUM", "confidence": 3}
    req = eng.requests[0]
    assert req.response_format["required"] == ["label", "confidence"]
    assert "JSON" in req.messages[-1]["content"] and '"confidence"' in req.messages[-1]["content"]


def test_record_missing_field_is_error():
    out = record(label=TEXT, confidence=INT)
    (t,) = run_forward(trec_program(output=out), [{"question": "Who?"}], FakeEngine(lambda m: '{"label": "HUM"}'))
    assert t.error == "raw: missing field confidence"


def test_agent_loop_breaks_and_skips_later_steps():
    corpus = ["Paris is the capital of France.", "Rome is the capital of Italy."]
    replies = iter(
        [
            {"action": "search", "arg": "capital of Italy"},
            {"action": "finish", "arg": "Rome"},
            {"action": "search", "arg": "never asked"},
        ]
    )
    eng = FakeEngine(lambda m: json.dumps(next(replies)))
    (t,) = run_forward(agent_program(3), [{"question": "Capital of Italy?", "corpus": corpus}], eng)
    assert t.ok, t.error
    assert t.output == "Rome"
    assert len(eng.requests) == 2
    # step 1 saw step 0's observation
    assert "Observation: Rome is the capital of Italy." in eng.requests[1].messages[-1]["content"]
    step2 = [r for r in t.records if r.name.endswith("_2") and r.name != "obs_2" and r.name != "alive_2"]
    assert step2 and all(not r.executed and r.value is None for r in step2)
    assert t.record("alive_2").value is False
    assert t.record("obs_2").value == "Rome"  # select kept the previous value


def test_agent_loop_runs_all_steps_without_finish():
    eng = FakeEngine(lambda m: json.dumps({"action": "lookup", "arg": "capital"}))
    (t,) = run_forward(agent_program(3), [{"question": "?", "corpus": ["Oslo is a capital."]}], eng)
    assert len(eng.requests) == 3
    assert t.output == "Oslo is a capital."
    assert all(r.executed for r in t.records)


def test_error_in_a_skipped_step_does_not_fail_the_sample():
    replies = iter([json.dumps({"action": "finish", "arg": "done"})])
    eng = FakeEngine(lambda m: next(replies))  # a second call would raise StopIteration
    (t,) = run_forward(agent_program(2), [{"question": "?", "corpus": []}], eng)
    assert t.ok and t.output == "done"


def test_prims_and_list_index_field():
    nodes = (
        Node("a", "const", target="ab"),
        Node("b", "const", target="cd"),
        Node("s", "prim", args=("a", "b"), target="add"),
        Node("l", "list", args=("a", "b")),
        Node("l2", "prim", args=("l", "l"), target="add"),
        Node("i", "index", args=("l2",), target=3),
        Node("e", "prim", args=("i", "b"), target="eq"),
        Node("n", "prim", args=("e",), target="not"),
        Node("r", "const", target={"k": 1}),
        Node("f", "field", args=("r",), target="k"),
        Node("lt", "prim", args=("f", "f"), target="lt"),
        Node("o", "prim", args=("n", "lt"), target="or"),
        Node("out", "list", args=("s", "e", "o", "f")),
    )
    p = trec_program()
    p = Program("<t>", "0", p.models, (), (), (), Workflow("w", (), TEXT, nodes, "out"))
    (t,) = run_forward(p, [{}], FakeEngine())
    assert t.output == ["abcd", True, False, 1]


def test_index_out_of_range_is_error():
    nodes = (Node("l", "const", target=[1]), Node("i", "index", args=("l",), target=2))
    p = trec_program()
    p = Program("<t>", "0", p.models, (), (), (), Workflow("w", (), TEXT, nodes, "i"))
    (t,) = run_forward(p, [{}], FakeEngine())
    assert t.error == "i: index 2 out of range for a list"


def test_loop_node_is_a_program_error():
    p = trec_program()
    p = p.with_nodes(p.nodes + (Node("lp", "loop", target="L"),))
    with pytest.raises(ProgramError, match="not unrolled"):
        run_forward(p, [{}], FakeEngine())


def test_concurrency_is_bounded_and_progress_reported():
    active = 0
    peak = 0

    class SlowEngine:
        async def call(self, req):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            from promptc.runtime.records import CallResult

            return CallResult(text="NUM")

    seen = []
    batch = [{"question": f"q{i}"} for i in range(12)]
    traces = run_forward(trec_program(), batch, SlowEngine(), concurrency=3, progress=lambda d, n: seen.append((d, n)))
    assert len(traces) == 12 and all(t.output == "NUM" for t in traces)
    assert [t.inputs for t in traces] == [(("question", f"q{i}"),) for i in range(12)]
    assert peak == 3
    assert seen[-1] == (12, 12) and len(seen) == 12


def test_forward_is_async():
    traces = asyncio.run(forward(trec_program(), [{"question": "Who?"}], FakeEngine(classify_by_keyword)))
    assert traces[0].output == "HUM"
    assert re.match(r"^\d", str(traces[0].record("raw").seconds))


def test_fault_injection_every_sample_answered_or_error(tmp_path):
    """30 % of calls fail (429, 500, timeout, garbage): every sample ends answered or with
    a recorded error, and the counts add up with the engine's accounting."""
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from attrs import evolve

    from promptc.ir import Model
    from promptc.runtime import scripted
    from promptc.runtime.engine import Engine

    flaky = scripted.faulty(lambda m: "NUM" if "many" in m[-1]["content"] else "HUM", rate=0.3, seed=7)
    scripted.register("flaky-fwd", flaky)
    try:
        p = evolve(trec_program(), models=(Model("task", "scripted/flaky-fwd"),))
        batch = [{"question": f"How many {i}?" if i % 2 else f"Who is {i}?"} for i in range(60)]
        eng = Engine(cache=None, retries=1, backoff=0.001, max_backoff=0.002, timeout=5)
        traces = run_forward(p, batch, eng, concurrency=16)
    finally:
        scripted.unregister("flaky-fwd")
    ok = [t for t in traces if t.ok]
    failed = [t for t in traces if not t.ok]
    assert len(ok) + len(failed) == 60 and failed and ok
    for i, t in enumerate(traces):
        if t.ok:
            assert t.output == ("NUM" if i % 2 else "HUM")
        else:
            assert t.output is None and t.error.startswith("raw: ")
    call_failures = [t for t in failed if "model call failed" in t.error]
    garbage = [t for t in failed if "answer is not one of" in t.error]
    assert len(call_failures) + len(garbage) == len(failed)
    acc = eng.accounting.totals()
    assert acc.calls == 60 and acc.errors == len(call_failures)
    # every attempt was either a clean answer (one per answered sample) or an injected fault
    assert flaky.calls - sum(flaky.injected.values()) == len(ok)
    assert flaky.injected["garbage"] == len(garbage)


def test_engine_that_raises_fails_the_sample_only():
    class Broken:
        async def call(self, req):
            if "boom" in req.messages[-1]["content"]:
                raise RuntimeError("socket closed")
            from promptc.runtime.records import CallResult

            return CallResult(text="HUM")

    ok, bad = run_forward(trec_program(), [{"question": "fine"}, {"question": "boom"}], Broken())
    assert ok.output == "HUM"
    assert bad.error == "raw: model call failed: engine raised RuntimeError: socket closed"


def test_run_forward_inside_a_running_loop():
    async def main():
        return run_forward(trec_program(), [{"question": "Who?"}], FakeEngine(classify_by_keyword))

    assert asyncio.run(main())[0].output == "HUM"


def test_interpreter_override_of_one_handler_changes_that_op_only():
    from promptc.runtime.interpreter import Interpreter

    class Shouting(Interpreter):
        async def op_llm(self, node, frame):
            value = await super().op_llm(node, frame)
            return "NUM" if value == "HUM" else value  # a different answer for one op

    eng = FakeEngine(classify_by_keyword)
    rows = [{"question": "Who wrote Hamlet?"}, {"question": "Where is Rome?"}]
    base = asyncio.run(Interpreter(trec_program(), eng).run(rows[0]))
    got = [asyncio.run(Shouting(trec_program(), eng).run(r)) for r in rows]
    assert base.output == "HUM"
    assert [t.output for t in got] == ["NUM", "LOC"]
    assert got[0].record("raw").raw == "Label: HUM."  # the other handlers and the record keeping ran as before


def test_one_fetch_hook_reads_every_argument():
    from promptc.runtime.interpreter import Interpreter

    read = []

    class Watching(Interpreter):
        def fetch(self, name, frame):
            read.append(name)
            return super().fetch(name, frame)

    t = asyncio.run(Watching(trec_program(), FakeEngine(classify_by_keyword)).run({"question": "Who?"}))
    assert t.output == "HUM"
    program = trec_program()
    assert set(read) == {a for n in program.nodes for a in n.args}


def test_trace_lookups_are_by_name():
    t = run_forward(trec_program(), [{"question": "Who?"}], FakeEngine(classify_by_keyword))[0]
    assert [t.record(r.name) for r in t.records] == list(t.records)
    with pytest.raises(KeyError):
        t.record("nowhere")
