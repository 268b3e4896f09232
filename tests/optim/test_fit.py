"""Meta-prompts that fit: token estimates, context windows, and the optimizer's and the
backward engine's prompts shrinking (least useful parts first) to a small fake context."""

from __future__ import annotations

import asyncio
import json
import struct

from promptc.optim import fit
from promptc.optim.backward import Gradient, Gradients, backward
from promptc.optim.instruction import meta_prompt, propose
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import forward
from tests.optim.helpers import Engine, kind, trec_like


def test_estimates_cut_share_budget():
    assert fit.estimate_tokens("abcdef") == 2 and fit.estimate_tokens("abcdefg") == 3
    assert fit.estimate_tokens("日本") == 2  # 6 bytes: non-Latin text is not under-counted
    assert fit.message_tokens([{"role": "user", "content": "abc"}]) == 1 + fit.MESSAGE_OVERHEAD
    assert fit.budget(None, 100) is None
    assert fit.budget(2048, 512) == 2048 - 512 - fit.MARGIN
    assert fit.budget(2048, 512, reserve=100) == 2048 - 612 - fit.MARGIN
    assert fit.cut("short", 10) == "short"
    assert fit.cut("x" * 100, 30) == "x" * (30 - len(fit.CUT)) + "…[cut]" and len(fit.cut("x" * 100, 30)) == 30
    # the longest text is cut first; a short one keeps its wording
    out = fit.share(["Be brief.", "q" * 1000, "a" * 300], 500)
    assert out[0] == "Be brief." and out[1].endswith(fit.CUT) and out[2].endswith(fit.CUT)
    assert sum(map(len, out)) <= 500
    assert fit.share(["a", "b"], 10) == ["a", "b"]
    assert fit.cut_lines("Input: " + "x" * 50 + "\nExpected: LOC", 20) == "Input: xxxxxxx…[cut]\nExpected: LOC"
    assert fit.dedupe(["Say LOC.", "say  loc.", "Other."]) == ["Say LOC. (×2)", "Other."]


def test_first_fitting_takes_the_first_level_that_fits():
    render = lambda n: ({"role": "user", "content": "w" * n},)
    assert fit.first_fitting(render, [3000, 1500, 300], None)[1] == 3000
    assert fit.first_fitting(render, [3000, 1500, 300], 600)[1] == 1500
    assert fit.first_fitting(render, [3000, 1500, 300], 10)[1] == 300  # none fits: the smallest


def test_context_windows_without_network(tmp_path, monkeypatch):
    assert fit.context_window("scripted/x") is None
    # local: the n_ctx the GGUF would be loaded with (its header says 32768; capped)
    gguf = tmp_path / "m.gguf"
    s = lambda t: struct.pack("<Q", len(t)) + t.encode()
    gguf.write_bytes(
        b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
        + s("general.architecture") + struct.pack("<I", 8) + s("llama")
        + s("llama.context_length") + struct.pack("<II", 4, 32768)
    )
    monkeypatch.delenv("PROMPTC_LOCAL_CTX", raising=False)
    assert fit.context_window(f"local/{gguf}") == 8192
    assert fit.context_window(f"local/{tmp_path / 'missing.gguf'}") is None
    # others: litellm's bundled model table
    assert fit.context_window("gpt-4o-mini") == 128000
    assert fit.context_window("no-such-provider/no-such-model") is None


# -- the optimizer's meta-prompt -------------------------------------------------------

LONG = "Consider the following passage carefully. " * 80  # ~3,400 characters of input


def long_gradients(n=8):
    items, losses = [], []
    for i in range(n):
        items.append(Gradient("instruction", i, "Say that a question about a place is LOC.", "raw"))
        items.append(Gradient("instruction", i, f"Sample {i}: the passage names a city; {LONG[:400]}", "raw"))
        losses.append((i, f'Input: {{"question": "{LONG} Where is it? ({i})"}}\nExpected: LOC\nGot: HUM'))
    return Gradients(items=tuple(items), samples=tuple(range(n)), losses=tuple(losses))


MEMORY = [(f"Old value {k}: " + "classify carefully " * 30, k / 10) for k in range(6)]


def user_of(messages):
    return messages[1]["content"]


def test_meta_prompt_shrinks_to_the_context_least_useful_parts_first():
    program = trec_like()
    g = long_gradients()
    full = meta_prompt(program, program.param("instruction"), g, memory=MEMORY, rejected=["Bad A.", "Bad B."])
    context = 2048
    max_tokens = 600 // 4 + 64
    assert fit.message_tokens(full) > fit.budget(context, max_tokens)  # would have failed the call

    engine = Engine(lambda req: "<proposal>Classify the question; places are LOC.</proposal>")
    prop = asyncio.run(propose(
        program, "instruction", g, engine, memory=MEMORY, rejected=["Bad A.", "Bad B."], context=context,
    ))
    assert prop.text == "Classify the question; places are LOC."
    sent = engine.requests[0].messages
    assert fit.message_tokens(sent) <= fit.budget(context, max_tokens)
    user = user_of(sent)
    # always whole: the current value, the role, the constraints
    assert "<current>\nClassify the question.\n</current>" in user and "Role: what to classify" in user
    assert "At most 600 characters" in user
    # repeated feedback once, fewer examples, long inputs cut with a visible marker
    assert user.count("Say that a question about a place is LOC.") == 1
    assert user.count("Example ") < 8 and "more failing examples not shown" in user
    assert fit.CUT in user and user.count("Expected: LOC") == user.count("Example ")  # verdicts kept
    # the best memory entry is the last one dropped
    assert user.count("score 0.") < 4
    shown_scores = [line for line in user.splitlines() if line.startswith("- score")]
    assert not shown_scores or shown_scores[0].startswith("- score 0.500")


def test_without_a_known_context_nothing_is_dropped():
    program = trec_like()
    g = long_gradients()
    engine = Engine(lambda req: "<proposal>Classify the question; places are LOC.</proposal>")
    asyncio.run(propose(program, "instruction", g, engine, memory=MEMORY))  # scripted: no context
    assert engine.requests[0].messages == meta_prompt(
        program, program.param("instruction"), g, memory=MEMORY, limit=600
    )
    # and a large context leaves the full meta-prompt as it was
    engine = Engine(lambda req: "<proposal>Classify the question; places are LOC.</proposal>")
    asyncio.run(propose(program, "instruction", g, engine, memory=MEMORY, context=100_000))
    assert engine.requests[0].messages == meta_prompt(
        program, program.param("instruction"), g, memory=MEMORY, limit=600
    )


def test_the_retry_fits_too():
    program = trec_like()
    replies = iter(["I would say " + "many things " * 150, "<proposal>Classify the question; places are LOC.</proposal>"])
    engine = Engine(lambda req: next(replies))
    prop = asyncio.run(propose(program, "instruction", long_gradients(), engine, memory=MEMORY, context=2048))
    assert prop.text is not None and prop.rejections == ("no-proposal",)
    first, retry = (r.messages for r in engine.requests)
    budget = fit.budget(2048, 600 // 4 + 64)
    assert fit.message_tokens(first) <= budget and fit.message_tokens(retry) <= budget
    assert retry[-2]["role"] == "assistant" and "could not be used" in retry[-1]["content"]
    assert len(user_of(retry)) < len(user_of(first))  # made room for the reply and the reminder


# -- the backward engine's prompt ------------------------------------------------------

def json_backward(req):
    if kind(req) == "backward":
        return json.dumps({k: "say that places are LOC" for k in req.response_format["required"]})
    return "HUM"


def test_backward_prompt_shrinks_to_the_context():
    program = trec_like()
    batch = [{"question": "Where is it? " + LONG * 2, "answer": "LOC"}]  # ~6,800 characters
    engine = Engine(json_backward)
    traces = asyncio.run(forward(program, batch, engine))
    scores = score(program, traces, batch)
    context = 1500
    grads = asyncio.run(backward(program, traces, batch, scores, engine, context=context))
    assert set(grads.params()) == {"instruction", "answer_format", "shots"}
    req = next(r for r in engine.requests if r.phase == "backward")
    assert fit.message_tokens(req.messages) <= fit.budget(context, 512)
    prompt = req.messages[1]["content"]
    # the long user input is cut (marked); the system prompt being trained stays whole
    assert fit.CUT in prompt and "[system] Classify the question.\nReply with the label only." in prompt
    assert "\nExpected: LOC\nGot: HUM" in prompt and "role: what to classify" in prompt
    # unfitted (no context known), the same prompt is larger than that budget
    engine = Engine(json_backward)
    asyncio.run(backward(program, traces, batch, scores, engine))
    unfitted = next(r for r in engine.requests if r.phase == "backward").messages
    assert fit.message_tokens(unfitted) > fit.budget(context, 512)
