"""Model declarations that say where and how: options, environment overrides, routing to
two servers, keys kept out of everything, typed outputs as JSON schema (fake servers)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI  # noqa: E402

from promptc import artifact  # noqa: E402
from promptc.cli import main  # noqa: E402
from promptc.compiler import compile_source  # noqa: E402
from promptc.errors import CompileError  # noqa: E402
from promptc.ir import Model  # noqa: E402
from promptc.printer import format_program  # noqa: E402
from promptc.runtime import endpoint  # noqa: E402
from promptc.runtime.engine import Engine  # noqa: E402
from promptc.runtime.records import CallRequest, Endpoint  # noqa: E402
from promptc.runtime.render import build_request  # noqa: E402

SECRET = "sk-test-0123456789abcdefSECRET"

TWO = """\
model near = "openai/near-model" {{ base_url "{a}"; temperature 0.25; max_tokens 12 }}
model far = "openai/far-model" {{
  base_url "{b}"
  key_env "PROMPTC_TEST_FAR_KEY"
  timeout 7
  top_p 0.5, seed 3
}}
llm first(q: text) -> text via near {{ user "first: {{q}}" }}
llm second(q: text) -> text via far {{ user "second: {{q}}" }}
workflow two(q: text) -> text {{
  let a = first(q)
  return second(a)
}}
"""


def compile_two(a: str = "http://127.0.0.1:1/v1", b: str = "http://127.0.0.1:2/v1"):
    return compile_source(TWO.format(a=a, b=b), "two.pflow")


def render(src: str) -> str:
    with pytest.raises(CompileError) as info:
        compile_source(src, "m.pflow")
    return info.value.render()


# --- the declaration --------------------------------------------------------------------------


def test_options_reach_the_ir_sorted_and_checked():
    p = compile_two()
    assert p.model("near").options == (("base_url", "http://127.0.0.1:1/v1"), ("max_tokens", 12), ("temperature", 0.25))
    far = dict(p.model("far").options)
    assert far == {"base_url": "http://127.0.0.1:2/v1", "key_env": "PROMPTC_TEST_FAR_KEY", "timeout": 7.0,
                   "top_p": 0.5, "seed": 3}
    assert isinstance(far["timeout"], float)
    assert 'near = "openai/near-model" { base_url "http://127.0.0.1:1/v1"; max_tokens 12; temperature 0.25 }' in (
        format_program(p)
    )


@pytest.mark.parametrize(
    "options, message, caret_under",
    [
        ('base_ur "http://x/v1"', "unknown model option 'base_ur' (did you mean 'base_url'?)", "base_ur"),
        (f'key_env "{SECRET}"', "key_env is the NAME of the environment variable", f'"{SECRET}"'),
        ('timeout "30"', "model option 'timeout' needs a number, got '30'", '"30"'),
        ("timeout 0", "model option 'timeout' must be > 0", "0"),
        ('base_url "localhost:8080"', "base_url needs a URL like", '"localhost:8080"'),
        ("seed 1; seed 2", "model option 'seed' is given twice", "seed"),
        ("seed 99999999999999999999999", "model option 'seed' must be between 0 and 2147483647", "9"),
        ("timeout 1.0e999", "model option 'timeout' must be a finite number", "1.0e999"),
    ],
)
def test_bad_options_are_located_errors(options, message, caret_under):
    src = f'model m = "openai/x" {{ {options} }}\nllm f(q: text) -> text via m {{ user "{{q}}" }}\n' \
          "workflow w(q: text) -> text { return f(q) }\n"
    text = render(src)
    assert message in text
    line = f'model m = "openai/x" {{ {options} }}'
    col = line.rindex(caret_under) if "twice" in message else line.index(caret_under)
    assert text.startswith("m.pflow:1:")
    assert f"\n  {line}\n  {' ' * col}^" in text, text


def test_decorator_model_gives_the_same_options():
    import promptc

    m = promptc.model("PROMPTC_X_MODEL", "openai/x", base_url="http://h:1/v1", timeout=5, key_env="X_KEY")
    assert m.options == (("base_url", "http://h:1/v1"), ("key_env", "X_KEY"), ("timeout", 5.0))
    with pytest.raises(CompileError, match="key_env is the NAME"):
        promptc.model(default="openai/x", key_env=SECRET)
    with pytest.raises(CompileError, match="top_p' must be <= 1"):
        promptc.model(default="openai/x", top_p=2.0)


def test_environment_overrides_every_option():
    m = compile_two().model("far")
    env = {
        "PROMPTC_FAR_BASE_URL": "http://gpu:8000/v1", "PROMPTC_FAR_TIMEOUT": "90", "PROMPTC_FAR_TEMPERATURE": "0.7",
        "PROMPTC_FAR_RESPONSE_SCHEMA": "false", "PROMPTC_FAR_KEY_ENV": "OTHER_KEY", "PROMPTC_FAR_MAX_TOKENS": "5",
    }
    s = endpoint.settings(m, env)
    assert s.model == "openai/far-model"
    assert s.endpoint == Endpoint(base_url="http://gpu:8000/v1", key_env="OTHER_KEY", timeout=90.0, response_schema=False)
    assert dict(s.decoding) == {"temperature": 0.7, "top_p": 0.5, "max_tokens": 5, "seed": 3}
    assert endpoint.settings(m, {}).endpoint.timeout == 7.0  # no override: the declaration
    with pytest.raises(ValueError, match=r"PROMPTC_FAR_TIMEOUT='soon': needs a number"):
        endpoint.settings(m, {"PROMPTC_FAR_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match=r"PROMPTC_FAR_KEY_ENV=.*NAME of the environment variable"):
        endpoint.settings(m, {"PROMPTC_FAR_KEY_ENV": SECRET})
    # a plain declaration has no endpoint and no decoding defaults
    assert endpoint.settings(Model("task", "local/default")) == endpoint.ModelSettings("local/default")


def test_requests_carry_the_declared_endpoint_and_decoding():
    p = compile_two()
    near = build_request(p, p.llm("first"), {"q": "x"})
    assert near.model == "openai/near-model" and near.endpoint == Endpoint(base_url="http://127.0.0.1:1/v1")
    assert (near.temperature, near.max_tokens, near.top_p, near.seed) == (0.25, 12, None, 0)
    assert build_request(p, p.llm("first"), {"q": "x"}, temperature=0.9).temperature == 0.9  # the caller wins
    far = build_request(p, p.llm("second"), {"q": "x"})
    assert (far.top_p, far.seed, far.endpoint.timeout) == (0.5, 3, 7.0)


def test_artifact_round_trip_keeps_options_and_reads_old_models(tmp_path):
    p = compile_two()
    path = tmp_path / "two.pfc"
    artifact.save(p, path)
    q, _ = artifact.load_artifact(path)
    assert q.models == p.models
    old = artifact.program_to_data(p)
    # as written before model options existed: a missing field decodes to its default
    assert [m.pop("options") for m in old["models"] if "options" in m]
    assert artifact.program_from_data(old).model("far").options == ()


# --- two servers, keys --------------------------------------------------------------------------


def test_two_models_at_two_base_urls_run_and_keys_stay_out(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("PROMPTC_TEST_FAR_KEY", SECRET)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    user = lambda body: body["messages"][-1]["content"]  # noqa: E731
    with FakeOpenAI(lambda b: "A(" + user(b) + ")") as a, FakeOpenAI(lambda b: "B(" + user(b) + ")") as b:
        src = tmp_path / "two.pflow"
        src.write_text(TWO.format(a=a.base_url, b=b.base_url))
        data = tmp_path / "in.jsonl"
        data.write_text(json.dumps({"q": "hi"}) + "\n")
        out = tmp_path / "out.jsonl"
        assert main(["compile", str(src), "-o", str(tmp_path / "two.pfc")]) == 0
        assert main(["run", str(tmp_path / "two.pfc"), "--data", str(data), "--out", str(out)]) == 0
        # a missing key variable is a recorded sample error naming the variable, not a crash
        monkeypatch.delenv("PROMPTC_TEST_FAR_KEY")
        assert main(["run", str(src), "--input", "q=other", "--no-cache"]) == 1
    assert json.loads(out.read_text())["output"] == "B(second: A(first: hi))"
    assert len(a.requests) == 2 and len(b.requests) == 1  # the second run stopped before `far`
    (ha, ba), (hb, bb) = a.requests[0], b.requests[0]
    assert (ba["model"], ba["temperature"], ba["max_tokens"]) == ("near-model", 0.25, 12)
    assert (bb["model"], bb["top_p"], bb["seed"]) == ("far-model", 0.5, 3)
    assert ha["authorization"] == "Bearer none"  # a local server without a key
    assert hb["authorization"] == f"Bearer {SECRET}"  # read from key_env at call time
    printed = capsys.readouterr()
    assert "PROMPTC_TEST_FAR_KEY" in printed.out + printed.err
    # the key is in no artifact, cache, output or log
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in caplog.text and SECRET not in printed.out + printed.err


def test_calls_without_an_endpoint_are_routed_by_the_engine(monkeypatch):
    """The backward engine and optimizer name only a model string: `use_models` routes them."""
    with FakeOpenAI(lambda b: "routed") as srv:
        p = compile_two(a=srv.base_url)
        engine = Engine(retries=0)
        engine.use_models(p)
        r = engine.call_sync(CallRequest(model="openai/near-model", messages=({"role": "user", "content": "q"},)))
    assert r.ok and r.text == "routed" and len(srv.requests) == 1


def test_a_missing_key_variable_is_one_failed_call(monkeypatch):
    monkeypatch.delenv("PROMPTC_TEST_NO_SUCH_KEY", raising=False)
    engine = Engine(retries=3)
    ep = Endpoint(base_url="http://127.0.0.1:9/v1", key_env="PROMPTC_TEST_NO_SUCH_KEY")
    r = engine.call_sync(CallRequest(model="openai/m", messages=({"role": "user", "content": "q"},), endpoint=ep))
    assert not r.ok and "PROMPTC_TEST_NO_SUCH_KEY" in r.error and r.attempts == 1
    t = engine.accounting.totals()
    assert (t.calls, t.errors, t.retries) == (1, 1, 0)


# --- typed outputs ------------------------------------------------------------------------------

TYPED = """\
model m = "openai/unknown-to-litellm" {{ base_url "{url}"{extra} }}
llm cls(q: text) -> enum[LOC, HUM] via m {{ user "{{q}}" }}
llm rec(q: text) -> {{answer: int}} via m {{ user "{{q}}" }}
workflow w(q: text) -> {returns} {{ return {call}(q) }}
"""


def _reply(body: dict) -> str:
    fmt = body.get("response_format")
    if fmt is None:  # free text, as a weak model on a plain server writes it
        return "The answer is HUM." if body["messages"][-1]["content"] == "Who?" else 'Answer: {"answer": 4}'
    props = fmt["json_schema"]["schema"]["properties"]
    return json.dumps({"label": "HUM"}) if "label" in props else json.dumps({"answer": 4})


@pytest.mark.parametrize("extra, schema_sent", [("; response_schema true", True), ("", False)])
@pytest.mark.parametrize("returns, call, expected", [("enum[LOC, HUM]", "cls", "HUM"), ("{answer: int}", "rec", {"answer": 4})])
def test_typed_outputs_use_a_schema_where_the_endpoint_takes_one(tmp_path, extra, schema_sent, returns, call, expected):
    from promptc.runtime.workflow import Workflow

    with FakeOpenAI(_reply) as srv:
        program = compile_source(TYPED.format(url=srv.base_url, extra=extra, returns=returns, call=call), "t.pflow")
        wf = Workflow(program, no_cache=True)
        try:
            assert wf(q="Who?") == expected
        finally:
            wf.close()
    (_, body), = srv.requests
    fmt = body.get("response_format")
    if not schema_sent:  # litellm does not know the model: the prompt's instruction and the tolerant parser
        assert fmt is None
    elif call == "cls":  # an enum: a one-field object whose field is constrained to the labels
        assert fmt["json_schema"]["schema"] == endpoint.enum_schema(("LOC", "HUM"))
    else:
        assert fmt["json_schema"]["schema"]["required"] == ["answer"]


def test_litellm_model_table_decides_when_the_declaration_is_silent():
    engine = Engine()
    hosted = CallRequest(model="openai/gpt-4o-mini", messages=({"role": "user", "content": "q"},), choices=("A", "B"))
    fmt = engine._kwargs(hosted)["response_format"]
    assert fmt["json_schema"]["schema"] == endpoint.enum_schema(("A", "B"))
    unknown = CallRequest(model="openai/no-such-model", messages=hosted.messages, choices=("A",))
    assert "response_format" not in engine._kwargs(unknown)
    declared = CallRequest(
        model="openai/gpt-4o-mini", messages=hosted.messages, choices=("A",), endpoint=Endpoint(response_schema=False)
    )
    assert "response_format" not in engine._kwargs(declared)
    assert endpoint.unwrap_enum('{"label": "B"}') == "B" and endpoint.unwrap_enum("B, surely") == "B, surely"


def test_decorated_model_options_lower_like_the_pflow_twin(tmp_path):
    import importlib.util

    import promptc
    from promptc.frontend.spans import strip_spans

    py = tmp_path / "twin_wf.py"
    py.write_text(
        "import promptc\n"
        "far = promptc.model('PROMPTC_FAR_MODEL', default='openai/far-model', base_url='http://127.0.0.1:2/v1',\n"
        "                    key_env='PROMPTC_TEST_FAR_KEY', timeout=7, top_p=0.5, seed=3)\n"
        "@promptc.llm(via=far, user='second: {q}')\n"
        "def second(q: str) -> str: ...\n"
        "@promptc.workflow\n"
        "def two(q: str) -> str:\n"
        "    return second(q)\n"
    )
    spec = importlib.util.spec_from_file_location("promptc_test_twin_wf", py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from_py = strip_spans(promptc.compile_workflow(mod.two))
    from_pflow = strip_spans(compile_source(
        'model far = env("PROMPTC_FAR_MODEL", "openai/far-model") {\n'
        '  base_url "http://127.0.0.1:2/v1"; key_env "PROMPTC_TEST_FAR_KEY"; timeout 7; top_p 0.5; seed 3\n}\n'
        'llm second(q: text) -> text via far { user "second: {q}" }\n'
        "workflow two(q: text) -> text { return second(q) }\n",
        str(tmp_path / "twin.pflow"),
    ))
    assert from_py.models == from_pflow.models and from_py.models[0].options


def test_a_server_that_echoes_the_key_does_not_leak_it(monkeypatch, caplog):
    """An authentication error quoting the key becomes a sample error without it."""
    monkeypatch.setenv("PROMPTC_TEST_ECHO_KEY", "abcd1234-not-an-sk-key")
    caplog.set_level(logging.DEBUG)
    echo = lambda body: (401, {"error": {"message": "invalid key abcd1234-not-an-sk-key", "type": "auth"}})  # noqa: E731
    with FakeOpenAI(echo) as srv:
        engine = Engine(retries=0)
        ep = Endpoint(base_url=srv.base_url, key_env="PROMPTC_TEST_ECHO_KEY")
        r = engine.call_sync(CallRequest(model="openai/m", messages=({"role": "user", "content": "q"},), endpoint=ep))
    assert srv.requests[0][0]["authorization"] == "Bearer abcd1234-not-an-sk-key"
    assert not r.ok and "invalid key" in r.error and "abcd1234" not in r.error
    assert "abcd1234-not-an-sk-key" not in caplog.text


def test_a_bad_override_fails_the_sample_with_the_variable_named(monkeypatch, tmp_path):
    from promptc.runtime.workflow import Workflow

    monkeypatch.setenv("PROMPTC_M_TIMEOUT", "soon")
    program = compile_source(
        'model m = "scripted/echo" { timeout 5 }\nllm f(q: text) -> text via m { user "{q}" }\n'
        "workflow w(q: text) -> text { return f(q) }\n", "w.pflow",
    )
    wf = Workflow(program, no_cache=True)
    try:
        (result,) = wf.batch([{"q": "hi"}])
    finally:
        wf.close()
    assert result.output is None and "PROMPTC_M_TIMEOUT='soon': needs a number" in result.error
