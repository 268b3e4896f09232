"""Prefix reuse on the embedded model: interleaved requests on a pool of instances give
the same greedy answers as evaluating every prompt in full, and evaluate far fewer tokens.

Skipped (with the reason) only where llama_cpp or the weights are not installed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from promptc.runtime import local

REASON = local.available("default")
pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(REASON is not None, reason=f"embedded model unavailable: {REASON}"),
]

TREC = Path(__file__).resolve().parents[2] / "examples" / "trec"
LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
CLASSIFY = "Classify the question by the kind of answer it asks for: ABBR, DESC, ENTY, HUM, LOC or NUM."
ANSWER = "Answer the question in one short sentence."


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (TREC / name).read_text().splitlines() if line.strip()]


def messages(system: str, demos: list[dict], question: str) -> list[dict]:
    out = [{"role": "system", "content": system}]
    for d in demos:
        out += [{"role": "user", "content": f"Question: {d['question']}"}, {"role": "assistant", "content": d["label"]}]
    return out + [{"role": "user", "content": f"Question: {question}"}]


def requests() -> list[tuple[list[dict], dict]]:
    """30 prompts in the order the demo race sends them: three 4-demo sets, each row's
    question under every set in turn (labels under a grammar), then free-text answers of
    up to 24 tokens that share only a system prompt and some demos."""
    train, test = rows("train.jsonl"), rows("test.jsonl")
    sets = [train[i * 4:(i + 1) * 4] for i in range(3)]
    out = [
        (messages(CLASSIFY, demos, row["question"]), {"max_tokens": 8, "choices": LABELS})
        for row in test[:8] for demos in sets
    ]
    out += [(messages(ANSWER, sets[i % 3][: i % 3], row["question"]), {"max_tokens": 24}) for i, row in enumerate(test[8:14])]
    return out


def test_interleaved_requests_reuse_prefixes_and_answer_as_a_full_evaluation():
    reqs = requests()
    path = local.default_model_path()
    pool = local.LocalPool(path, size=2, threads=1)
    try:
        async def run_all():
            return await asyncio.gather(*(asyncio.wrap_future(pool.submit(m, kw)) for m, kw in reqs))

        answers = asyncio.run(run_all())
        assert len(pool.models) == 2  # both instances served
        evaluated = sum(m.llm.tokens_evaluated for m in pool.models)
        loaded = sum(m.llm.states_loaded for m in pool.models)
        saved = sum(m.llm.states_saved for m in pool.models)
    finally:
        pool.close()
    prompt_tokens = sum(a.prompt_tokens for a in answers)
    assert loaded > 0 and evaluated < prompt_tokens / 2, (evaluated, prompt_tokens)
    # a call that reused a prefix and read only its question keeps no state of its own
    assert 3 <= saved <= len(reqs) // 2, (saved, len(reqs))

    reference = local.LocalModel(path, threads=1)  # no prefix cache
    try:
        expected = []
        for m, kw in reqs:
            reference.llm.reset()  # nothing kept from the call before: the whole prompt is evaluated
            expected.append(reference.complete(m, **kw))
        assert reference.llm.tokens_evaluated >= prompt_tokens
    finally:
        reference.close()
    assert [a.text for a in answers] == [e.text for e in expected]
    assert [a.prompt_tokens for a in answers] == [e.prompt_tokens for e in expected]
    assert all(a.text in LABELS for a in answers[:24])


def test_a_prefix_is_computed_once_when_requests_sharing_it_arrive_together():
    """Six requests with the same system prompt and demos reach a two-instance pool at
    once: the second instance waits for the first to compute the prefix, then reuses it."""
    train, test = rows("train.jsonl"), rows("test.jsonl")
    reqs = [(messages(CLASSIFY, train[:8], row["question"]), {"max_tokens": 8, "choices": LABELS}) for row in test[:6]]
    pool = local.LocalPool(local.default_model_path(), size=2, threads=1)
    try:
        async def run_all():
            return await asyncio.gather(*(asyncio.wrap_future(pool.submit(m, kw)) for m, kw in reqs))

        answers = asyncio.run(run_all())
        evaluated = sum(m.llm.tokens_evaluated for m in pool.models)
    finally:
        pool.close()
    first = answers[0].prompt_tokens  # ~260 tokens, ~20 of them the question
    # computed twice, the prefix alone would be ~2 x 240 tokens
    assert evaluated < first + 5 * 40, (evaluated, [a.prompt_tokens for a in answers])
    assert all(a.text in LABELS for a in answers)
