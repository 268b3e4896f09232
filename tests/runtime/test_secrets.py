"""No key reaches disk or a terminal: a server that echoes its request headers, in its
errors or in its answers, and keys of unusual names and shapes, given three ways."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import pytest

from promptc.cli import main
from promptc.runtime.engine import Engine
from promptc.runtime.failures import describe, scrub, scrub_answer
from promptc.runtime.records import CallRequest, Endpoint

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

KEY = "Zq~7.pass+word!hunter2"  # no sk- prefix, no "key" in it
NAME = "SRV_CREDS_FOR_TESTS"  # not *_KEY / *_TOKEN / *_SECRET

FLOW = """\
model m = "openai/echo" {{ base_url "{url}"{key} }}
param hint: prompt trainable "what to say first" = "Answer:"
llm ask(q: text) -> text via m {{ user "{{hint}} {{q}}" }}
workflow w(q: text) -> text {{ return ask(q) }}
"""


def echo_answer(body: dict, headers: dict) -> str:
    return "the proxy saw " + json.dumps(headers)


def echo_error(body: dict, headers: dict):
    return 401, {"error": {"message": f"Incorrect API key provided: {headers.get('authorization')}"}}


def leaks(tmp_path: Path, printed: str, logged: str) -> list[str]:
    found = [str(f) for f in tmp_path.rglob("*") if f.is_file() and KEY.encode() in f.read_bytes()]
    return found + [w for w, text in (("output", printed), ("log", logged)) if KEY in text]


@pytest.mark.parametrize("echo", [echo_answer, echo_error], ids=["in-answers", "in-errors"])
@pytest.mark.parametrize("given", ["key_env", "provider-variable"])
def test_an_echoed_key_is_in_no_file_and_no_output(tmp_path, monkeypatch, capsys, caplog, echo, given):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    if given == "key_env":
        monkeypatch.setenv(NAME, KEY)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        key = f'; key_env "{NAME}"'
    else:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)  # litellm reads it itself
        key = ""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{i}", "answer": "x"}) + "\n" for i in range(3)))
    with FakeOpenAI(echo, with_headers=True) as srv:
        src = tmp_path / "w.pflow"
        src.write_text(FLOW.format(url=srv.base_url, key=key))
        main(["eval", str(src), "--data", str(data), "--out", str(tmp_path / "eval.jsonl")])
        main(["run", str(src), "--data", str(data), "--out", str(tmp_path / "run.jsonl")])
        main(["run", str(src), "--data", str(data), "--no-cache"])
        main(["run", str(src), "--input", "q=hello", "--no-cache"])
        main(["compile", str(src), "-o", str(tmp_path / "w.pfc")])
        main(["run", str(tmp_path / "w.pfc"), "--input", "q=again"])
        assert srv.requests and all(KEY in h.get("authorization", "") for h, _ in srv.requests)
    printed = capsys.readouterr()
    assert (tmp_path / ".promptc" / "cache").is_dir()
    assert "***" in printed.out + printed.err + (tmp_path / "eval.jsonl").read_text()  # masked, not dropped
    assert leaks(tmp_path, printed.out + printed.err, caplog.text) == []


def test_an_echoed_key_is_in_no_run_file_of_optimize(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(NAME, KEY)
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{i}", "answer": "x"}) + "\n" for i in range(3)))
    with FakeOpenAI(echo_answer, with_headers=True) as srv:
        src = tmp_path / "w.pflow"
        src.write_text(FLOW.format(url=srv.base_url, key=f'; key_env "{NAME}"'))
        main([
            "optimize", str(src), "--train", str(data), "--val", str(data), "--steps", "1", "--batch-size", "2",
            "--proposals", "1", "--run-dir", str(tmp_path / "run"), "--timeout", "10",
        ])
        assert len(srv.requests) > 3  # the backward and optimizer calls went there too
    printed = capsys.readouterr()
    assert list((tmp_path / "run").iterdir())
    assert leaks(tmp_path, printed.out + printed.err, caplog.text) == []


def test_an_api_key_argument_is_masked_in_answers_and_errors():
    key = "tok/with=odd_shape;and-spaces? no"
    for echo in (echo_answer, echo_error):
        with FakeOpenAI(echo, with_headers=True) as srv:
            engine = Engine(retries=0, extra_params={"api_key": key})
            req = CallRequest(model="openai/echo", messages=({"role": "user", "content": "q"},),
                              endpoint=Endpoint(base_url=srv.base_url))
            r = asyncio.run(engine.call(req))
            engine.close()
        shown = (r.text or "") + (r.error or "")
        assert "Bearer ***" in shown and key not in shown, shown


def test_scrub_masks_a_remembered_key_also_json_escaped():
    from promptc.runtime.failures import remember_secret

    odd = 'quote"and\\back-slash-9'
    remember_secret(odd)
    assert odd not in scrub(f"got {odd}") and json.dumps(odd)[1:-1] not in scrub(f"got {json.dumps(odd)}")
    assert scrub_answer(f"got {odd}") == "got ***"
    assert scrub_answer("turkey-sandwich-with-extra-cheese") == "turkey-sandwich-with-extra-cheese"


def test_answers_keep_the_values_of_unrelated_key_variables(monkeypatch):
    from promptc.runtime.failures import remember_secrets

    monkeypatch.setenv("SORT_KEY", "question")  # not a key anything was sent with
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-var-0123456789")
    remember_secrets({"model": "openai/gpt-x", "messages": []})  # litellm reads OPENAI_API_KEY
    assert scrub_answer("a question about sk-openai-var-0123456789") == "a question about ***"
    assert "question" not in scrub("bad question") and describe(RuntimeError("x question")).endswith("***")


SECRET_MODEL = """\
model task = env("{var}", "scripted/echo")
llm ask(q: text) -> text via task {{ user "{{q}}" }}
workflow w(q: text) -> text {{ return ask(q) }}
"""


@pytest.mark.parametrize("var", ["OPENAI_API_KEY", "GITHUB_TOKEN", "my_secret", "DB_PASSWORD"])
def test_a_model_string_is_never_read_from_a_secret_variable(var, tmp_path, monkeypatch, capsys):
    """A model string is written to the cache, logs and artifacts: `env("..._KEY")` as its
    source is refused at the declaration, and at run time for an edited artifact."""
    from attrs import evolve

    from promptc.compiler import compile_source
    from promptc.errors import CompileError
    from promptc.runtime import endpoint

    monkeypatch.setenv(var, "sk-live-this-is-a-key-0123456789")
    src = tmp_path / "w.pflow"
    src.write_text(SECRET_MODEL.format(var=var))
    assert main(["run", str(src), "--input", "q=hi", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert f"{src}:1:1: error: model 'task' reads its model string from {var}" in err and "^" in err
    assert f'key_env "{var}"' in err and "sk-live" not in err
    program = compile_source(SECRET_MODEL.format(var="PROMPTC_TASK_MODEL"), "w.pflow")
    edited = evolve(program.model("task"), env=var)
    with pytest.raises(ValueError, match=f"reads its model string from {var}"):
        endpoint.settings(edited)
    with pytest.raises(CompileError):
        compile_source(SECRET_MODEL.format(var=var), "w.pflow")


def test_an_artifact_whose_model_reads_a_secret_variable_is_refused(tmp_path):
    from attrs import evolve

    from promptc import artifact
    from promptc.compiler import compile_source

    program = compile_source(SECRET_MODEL.format(var="PROMPTC_TASK_MODEL"), "w.pflow")
    edited = evolve(program, models=(evolve(program.model("task"), env="ANTHROPIC_API_KEY"),))
    path = tmp_path / "w.pfc"
    artifact.save(edited, path)
    with pytest.raises(artifact.ArtifactError, match="reads its model string from ANTHROPIC_API_KEY, which is named like a secret"):
        artifact.load_program(path)
