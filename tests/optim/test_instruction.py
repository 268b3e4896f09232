"""The instruction optimizer's meta-prompt (peers, gradients in time order, memory,
rejected values, constraints) and its robust proposal handling."""

from __future__ import annotations

import asyncio

from promptc.optim.backward import Gradient, Gradients
from promptc.optim.instruction import meta_prompt, propose
from promptc.ir import TimeIndex
from tests.optim.helpers import Engine, trec_like, two_step


def grads(param="instruction"):
    return Gradients(
        items=(
            Gradient(param, 1, "Say that places are LOC.", "raw"),
            Gradient(param, 3, "Counts are NUM.", "raw"),
        ),
        samples=(1, 3),
        losses=((1, "Expected: LOC\nGot: HUM"), (3, "Expected: NUM\nGot: HUM")),
    )


def test_meta_prompt_shows_role_value_peers_gradients_memory_rejected_constraints():
    program = trec_like()
    p = program.param("instruction")
    msgs = meta_prompt(program, p, grads(), memory=[("Old A.", 0.25), ("Old B.", 0.5)], rejected=["Bad one."])
    user = msgs[1]["content"]
    assert "Role: what to classify" in user and "Classify the question." in user
    # peers, read-only, with their role and current value
    assert "`answer_format` (role: how to write the answer): 'Reply with the label only.'" in user
    assert "`shots` (few-shot examples" in user
    assert user.index("Say that places are LOC.") < user.index("Counts are NUM.")
    assert "Expected: LOC" in user
    assert user.index("score 0.500: 'Old B.'") < user.index("score 0.250: 'Old A.'")
    assert "- 'Bad one.'" in user
    assert "At most 600 characters" in user


def test_meta_prompt_labels_loop_steps_in_time_order():
    program = two_step()
    g = Gradients(
        items=(
            Gradient("style", 0, "first step feedback", "refine1@r#0", TimeIndex("r", 0)),
            Gradient("style", 0, "second step feedback", "refine1@r#1", TimeIndex("r", 1)),
        ),
        samples=(0,),
    )
    user = meta_prompt(program, program.param("style"), g)[1]["content"]
    assert user.index("step 0 (at `refine1@r#0`): first step feedback") < user.index("step 1 (at `refine1@r#1`): second step feedback")


def test_propose_extracts_and_retries_once():
    program = trec_like()
    replies = iter(["I think you should mention places.", "<proposal>Classify the question; places are LOC.</proposal>"])
    engine = Engine(lambda req: next(replies))
    prop = asyncio.run(propose(program, "instruction", grads(), engine))
    assert prop.text == "Classify the question; places are LOC." and prop.calls == 2
    assert "could not be used" in engine.requests[1].messages[-1]["content"]
    assert all(r.phase == "propose" for r in engine.requests)


def test_propose_skips_without_crashing():
    program = trec_like()
    engine = Engine(lambda req: "<proposal>## Constraints\n- Keep every placeholder</proposal>")
    prop = asyncio.run(propose(program, "instruction", grads(), engine))
    assert prop.text is None and "header" in prop.reason and prop.calls == 2
    failing = Engine(lambda req: None)
    prop = asyncio.run(propose(program, "instruction", grads(), failing))
    assert prop.text is None and "failed" in prop.reason and prop.calls == 1


def test_propose_rejects_identical_and_already_rejected():
    program = trec_like()
    engine = Engine(lambda req: "<proposal>Classify the question.</proposal>")
    assert asyncio.run(propose(program, "instruction", grads(), engine)).text is None
    engine = Engine(lambda req: "<proposal>Try X.</proposal>")
    assert asyncio.run(propose(program, "instruction", grads(), engine, rejected=["Try X."])).text is None


def enum_task():
    """question -> classify (instruction) -> enum[ABBR, LOC, NUM]; and a second llm not using it."""
    from promptc.compiler import run_passes
    from promptc.types import TEXT, enum, Type
    from promptc.build import ProgramBuilder

    b = ProgramBuilder()
    b.model("task", "scripted/x")
    b.param("instruction", trainable=True, text="Label the question ABBR, LOC or NUM.", role="what to classify")
    b.param("other", trainable=True, text="Say YES.", role="unrelated")
    b.function("exact_match", module="std.metrics")
    rec = Type("record", fields=(("kind", enum("ABBR", "LOC", "NUM")), ("why", TEXT)))
    b.llm("classify", [("question", TEXT)], rec, system="{instruction}", user="Question: {question}")
    b.llm("judge", [("question", TEXT)], enum("YES", "NO"), system="{other}", user="{question}")
    w = b.workflow("wf", [("question", TEXT)], TEXT)
    q = w.input("question")
    w.llm("classify", q, name="raw")
    w.ret(w.llm("judge", q, name="ok"))
    b.train_spec("exact_match")
    return run_passes(b.build())


def test_labels_for_reads_the_enum_outputs_of_the_llms_using_the_param():
    from promptc.optim.instruction import labels_for

    program = enum_task()
    assert labels_for(program, "instruction") == ("ABBR", "LOC", "NUM")
    assert labels_for(program, "other") == ("YES", "NO")
    assert labels_for(trec_like(), "instruction") == ()


def test_propose_names_the_filter_of_each_refused_reply():
    program = enum_task()
    g = grads()
    loss_line = "The workflow's final output was judged by the metric `exact_match` and scored 0.033."
    replies = iter([
        "<proposal>" + " ".join([loss_line] * 7) + "</proposal>",
        "<proposal>Label the question by its answer type.</proposal>",
    ])
    prop = asyncio.run(propose(program, "instruction", g, Engine(lambda req: next(replies))))
    assert prop.text is None and prop.rejections == ("repetition", "dropped-label")
    assert "ABBR" in prop.reason
    replies = iter(["no tags at all", "<proposal>Label the question ABBR, LOC or NUM; places are LOC.</proposal>"])
    prop = asyncio.run(propose(program, "instruction", g, Engine(lambda req: next(replies))))
    assert prop.text == "Label the question ABBR, LOC or NUM; places are LOC." and prop.rejections == ("no-proposal",)
    prop = asyncio.run(propose(program, "instruction", g, Engine(lambda req: None)))
    assert prop.rejections == ("call-failed",)


def test_propose_refuses_a_copy_of_the_loss_lines_it_was_shown():
    program = trec_like()
    g = Gradients(
        items=(Gradient("instruction", 0, "Mention places.", "raw"),),
        samples=(0,),
        losses=((0, 'Input: {"question": "Where is Lima?"}\nExpected: LOC\nGot: HUM'),),
    )
    reply = '<proposal>Classify the question. Input: {"question": "Where is Lima?"} Expected: LOC Got: HUM</proposal>'
    prop = asyncio.run(propose(program, "instruction", g, Engine(lambda req: reply)))
    assert prop.text is None and prop.rejections == ("meta-copy", "meta-copy")
