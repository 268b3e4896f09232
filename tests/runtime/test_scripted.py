"""The scripted engine on its own (no litellm): rules files, registry, fault injection."""

from __future__ import annotations

import asyncio
import json

import pytest

from promptc.runtime import scripted


def msgs(user: str, system: str | None = None) -> list[dict]:
    out = [{"role": "system", "content": system}] if system else []
    return out + [{"role": "user", "content": user}]


def ask(name: str, messages: list[dict], options: dict | None = None) -> scripted.Answer:
    return asyncio.run(scripted.answer(name, messages, options))


RULES = {
    "rules": [
        {"match": r"capital of (\w+)", "reply": r"The capital of \1."},
        {"system": "json", "match": "weather", "reply": '{"sky": "blue"}'},
        {"any": "hello", "reply": "hi"},
    ],
    "default": "no idea",
}


def test_json_rules_in_order_with_groups(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES))
    name = str(path)
    assert ask(name, msgs("What is the capital of France?")).text == "The capital of France."
    # both patterns must match: system alone is not enough
    assert ask(name, msgs("weather?", system="answer in JSON")).text == '{"sky": "blue"}'
    assert ask(name, msgs("weather?")).text == "no idea"
    assert ask(name, msgs("nothing", system="hello there")).text == "hi"
    assert ask(name, msgs("nothing at all")).text == "no idea"


def test_toml_rules_and_token_counts(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('default = "x"\n[[rules]]\nmatch = "^Question: (.*)$"\nreply = "A: \\\\1"\n')
    ans = ask(str(path), msgs("Question: who wrote it"))
    assert ans.text == "A: who wrote it"
    assert ans.prompt_tokens == 4  # whitespace words of the prompt
    assert ans.completion_tokens == 4


def test_rules_file_reloaded_when_changed(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rules": [], "default": "one"}))
    assert ask(str(path), msgs("q")).text == "one"
    path.write_text(json.dumps({"rules": [], "default": "two!"}))  # different size -> new mtime/key
    import os

    os.utime(path, (1, 1))
    assert ask(str(path), msgs("q")).text == "two!"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"rules": [{"match": "("}]}, "needs a 'reply'"),
        ({"rules": [{"match": "(", "reply": "x"}]}, "bad regex"),
        ({"rules": [{"reply": "x"}]}, "needs one of"),
        ([1, 2], "is an object"),
    ],
)
def test_bad_rules_are_clear_errors(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(scripted.ScriptError, match=message):
        ask(str(path), msgs("q"))


def test_missing_rules_file_and_unknown_name():
    with pytest.raises(scripted.ScriptError, match="not found"):
        ask("/nonexistent/rules.json", msgs("q"))
    with pytest.raises(scripted.ScriptError, match="no scripted engine named 'nobody-here'"):
        ask("nobody-here", msgs("q"))


def test_registered_callables_dicts_options_and_errors():
    scripted.register("t-upper", lambda m: m[-1]["content"].upper())
    assert ask("t-upper", msgs("abc def")).text == "ABC DEF"

    scripted.register("t-dict", lambda m: {"text": "ok", "prompt_tokens": 7, "completion_tokens": 2})
    assert ask("t-dict", msgs("q")) == scripted.Answer("ok", 7, 2)

    seen = {}

    def with_options(messages, options):
        seen.update(options)
        return options["choices"][0]

    scripted.register("t-opts", with_options)
    assert ask("t-opts", msgs("q"), {"choices": ["B", "A"]}).text == "B"

    def boom(messages):
        raise KeyError("nope")

    scripted.register("t-boom", boom)
    with pytest.raises(scripted.ScriptError, match="raised KeyError"):
        ask("t-boom", msgs("q"))

    scripted.register("t-bad", lambda m: 42)
    with pytest.raises(scripted.ScriptError, match="returned int"):
        ask("t-bad", msgs("q"))

    async def slow(messages):
        await asyncio.sleep(0)
        return "awaited"

    scripted.register("t-async", slow)
    assert ask("t-async", msgs("q")).text == "awaited"
    for name in ("t-upper", "t-dict", "t-opts", "t-boom", "t-bad", "t-async"):
        scripted.unregister(name)
    assert not scripted.registered("t-upper")


def test_faulty_is_deterministic_and_near_its_rate():
    def run(seed):
        f = scripted.faulty(lambda m: "fine", rate=0.3, seed=seed)
        outcomes = []
        for i in range(400):
            try:
                outcomes.append(f(msgs(f"q{i}")))
            except Exception as e:  # litellm errors
                outcomes.append(type(e).__name__)
        return f, outcomes

    f1, a = run(0)
    f2, b = run(0)
    _, c = run(1)
    assert a == b and a != c
    faults = sum(f1.injected.values())
    assert 80 <= faults <= 160  # 30 % of 400 = 120
    assert all(f1.injected[k] > 0 for k in scripted.FAULT_KINDS)
    names = set(a)
    assert {"RateLimitError", "InternalServerError", "Timeout", "fine"} <= names
    garbage = [x for x in a if x not in ("RateLimitError", "InternalServerError", "Timeout", "fine")]
    assert len(garbage) == f1.injected["garbage"]


def test_faulty_retry_of_the_same_prompt_draws_again():
    f = scripted.faulty(lambda m: "fine", rate=0.5, seed=3, kinds=("500",))
    results = []
    for _ in range(30):
        try:
            results.append(f(msgs("same prompt")))
        except Exception:
            results.append("err")
    assert "fine" in results and "err" in results


def test_faulty_rejects_unknown_kinds():
    with pytest.raises(ValueError):
        scripted.faulty(lambda m: "x", kinds=("404",))
