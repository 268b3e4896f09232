"""`promptc run` and `promptc eval`, in-process with the scripted engine (and one subprocess
run with a rules file, since a subprocess cannot see in-process registrations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

from promptc.cli import main
from promptc.runtime import scripted

ROOT = Path(__file__).resolve().parent.parent
TREC = ROOT / "examples" / "trec" / "trec.pflow"
TREC_TEST = ROOT / "examples" / "trec" / "test.jsonl"


def keyword_label(question: str) -> str:
    q = question.lower()
    if q.startswith("who"):
        return "HUM"
    if q.startswith("where"):
        return "LOC"
    if q.startswith(("how many", "when", "how much")):
        return "NUM"
    return "DESC"


def trec_engine(messages):
    q = messages[-1]["content"].removeprefix("Question: ")
    if "sky" in q:
        return "I cannot tell."  # not a label: a sample error
    return f"Label: {keyword_label(q)}."


@pytest.fixture
def trec_model(monkeypatch, tmp_path):
    scripted.register("cli-trec", trec_engine)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", "scripted/cli-trec")
    monkeypatch.chdir(tmp_path)  # the default cache (.promptc/cache) lands in tmp_path
    yield
    scripted.unregister("cli-trec")


def test_run_single_input_prints_label(trec_model, capsys):
    assert main(["run", str(TREC), "--input", "question=Who wrote Hamlet?"]) == 0
    assert capsys.readouterr().out == "HUM\n"
    assert (Path(".promptc") / "cache").exists()


def test_run_failed_sample_exits_1_without_traceback(trec_model, capsys):
    assert main(["run", str(TREC), "--input", "question=Why is the sky blue?", "--no-cache"]) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "error: label: answer is not one of ABBR, DESC, ENTY, HUM, LOC, NUM" in cap.err
    assert "raw answer of label: I cannot tell." in cap.err
    assert "Traceback" not in cap.err


def test_run_data_writes_jsonl(trec_model, tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    qs = ["Who is Bach?", "Where is Rome?", "Why is the sky blue?", "How many legs has a spider?"]
    data.write_text("".join(json.dumps({"question": q}) + "\n" for q in qs))
    out = tmp_path / "out.jsonl"
    assert main(["run", str(TREC), "--data", str(data), "--out", str(out), "--concurrency", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["output"] for r in rows] == ["HUM", "LOC", None, "NUM"]
    assert rows[2]["error"].startswith("label: answer is not one of")
    err = capsys.readouterr().err
    assert "n=4 · errors 1 · calls 4 (cache hits 0)" in err

    # without --out the rows go to stdout; everything is cached now
    assert main(["run", str(TREC), "--data", str(data)]) == 0
    cap = capsys.readouterr()
    assert [json.loads(line)["output"] for line in cap.out.splitlines()] == ["HUM", "LOC", None, "NUM"]
    # the unparsable answer was a successful call: it is cached like the others
    assert "n=4 · errors 1 · calls 0 (cache hits 4)" in cap.err


def expected_accuracy(n: int) -> float:
    rows = [json.loads(line) for line in TREC_TEST.read_text().splitlines() if line.strip()][:n]
    return sum(keyword_label(r["question"]) == r["label"] for r in rows) / n


def test_eval_prints_metric_and_reuses_cache(trec_model, capsys):
    assert main(["eval", str(TREC), "--data", str(TREC_TEST), "--limit", "20"]) == 0
    first = capsys.readouterr().out.strip()
    acc = expected_accuracy(20)
    assert first.startswith(f"exact_match {acc:.3f} · n=20 · errors 0 · calls 20 (cache hits 0) · tokens ")
    assert main(["eval", str(TREC), "--data", str(TREC_TEST), "--limit", "20"]) == 0
    second = capsys.readouterr().out.strip()
    assert second.startswith(f"exact_match {acc:.3f} · n=20 · errors 0 · calls 0 (cache hits 20) · tokens 0 in")


def test_eval_metric_option_and_out(trec_model, tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    assert main(["eval", str(TREC), "--data", str(TREC_TEST), "--limit", "5", "--metric", "contains", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("contains ")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(set(r) == {"inputs", "output", "expected", "score", "error"} for r in rows)
    assert all(r["score"] == float(r["output"] == r["expected"]) for r in rows)
    firsts = [json.loads(line) for line in TREC_TEST.read_text().splitlines()][:5]
    assert [r["inputs"] for r in rows] == [{"question": f["question"]} for f in firsts]


def test_eval_usage_errors(trec_model, tmp_path, capsys):
    assert main(["eval", str(TREC), "--data", str(TREC_TEST), "--metric", "bleu"]) == 2
    assert "unknown metric 'bleu'" in capsys.readouterr().err
    assert main(["eval", str(TREC), "--data", str(tmp_path / "nope.jsonl")]) == 1
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "label": "HUM"}\nnot json\n')
    assert main(["eval", str(TREC), "--data", str(bad)]) == 1
    assert f"{bad}:2:1: not valid JSON" in capsys.readouterr().err


def test_compile_error_is_rendered(tmp_path, capsys):
    src = tmp_path / "bad.pflow"
    src.write_text('model task = "scripted/x"\nworkflow w(q: text) -> text {\n  return nope(q)\n}\n')
    assert main(["run", str(src), "--input", "q=hi"]) == 1
    err = capsys.readouterr().err
    assert f"{src}:3:" in err and "error:" in err and "^" in err
    assert "Traceback" not in err


ECHO = """
model task = "scripted/cli-echo"
llm echo(n: int, name: text, tags: list[text]) -> text via task {
  user "{name} has {n} {tags}"
}
workflow w(n: int, name: text, tags: list[text]) -> text {
  return echo(n, name, tags)
}
"""


@pytest.fixture
def echo_src(tmp_path, monkeypatch):
    scripted.register("cli-echo", lambda m: m[-1]["content"])
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "echo.pflow"
    src.write_text(ECHO)
    yield src
    scripted.unregister("cli-echo")


def test_inputs_are_cast_to_declared_types(echo_src, capsys):
    args = ["run", str(echo_src), "--no-cache", "--input", "n=3", "--input", "name=123", "--input", 'tags=["a", "b"]']
    assert main(args) == 0
    assert capsys.readouterr().out == '123 has 3 ["a", "b"]\n'


@pytest.mark.parametrize(
    "inputs,message",
    [
        (["n=abc", "name=x", "tags=[]"], "input 'n': expected a number"),
        (["n=1", "name=x"], "missing input tags"),
        (["n=1", "name=x", "tags=[]", "zz=1"], "unknown input 'zz'"),
        (["n1", "name=x", "tags=[]"], "--input expects NAME=VALUE"),
    ],
)
def test_bad_inputs_are_usage_errors(echo_src, capsys, inputs, message):
    args = ["run", str(echo_src)] + [x for i in inputs for x in ("--input", i)]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_run_compiled_artifact(echo_src, tmp_path, capsys):
    from promptc.artifact import save
    from promptc.compiler import compile_file

    pfc = tmp_path / "echo.pfc"
    save(compile_file(echo_src), pfc)
    assert main(["run", str(pfc), "--input", "n=2", "--input", "name=Ann", "--input", "tags=[]", "--no-cache"]) == 0
    assert capsys.readouterr().out == "Ann has 2 []\n"
    (tmp_path / "junk.pfc").write_bytes(b"not an artifact")
    assert main(["run", str(tmp_path / "junk.pfc"), "--input", "n=1"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_subprocess_run_with_rules_file(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"match": "Who", "reply": "HUM"}], "default": "LOC"}))
    env = {**os.environ, "PROMPTC_TASK_MODEL": f"scripted/{rules}", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", "run", str(TREC), "--input", "question=Who wrote Hamlet?", "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "HUM\n"


@pytest.mark.local_model
def test_run_on_the_embedded_model(tmp_path, monkeypatch, capsys):
    """End to end on SmolLM2 through llama-cpp-python: a label, constrained to the enum."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the `local` extra)")
    monkeypatch.delenv("PROMPTC_TASK_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(TREC), "--input", "question=Who wrote Hamlet?"]) == 0
    assert capsys.readouterr().out.strip() in ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


JUDGED_SRC = """
model task = env("PROMPTC_TASK_MODEL", "scripted/echo")
param rubric: prompt "how to judge" = "Judge it."
llm ask(q: text) -> text via task { user "{q}" }
llm judge(got: text, expected: text) -> {score: float, feedback: text} via task {
  system "{rubric}"
  user "Got: {got}|Expected: {expected}"
}
workflow w(q: text) -> text { return ask(q) }
train w { metric judge }
"""


def judge_engine(messages):
    if messages[0]["content"] == "Judge it.":
        got, expected = messages[-1]["content"].split("\n")[0][5:].split("|Expected: ")
        return json.dumps({"score": 1.0 if got == expected else 0.0, "feedback": "-"})
    return messages[-1]["content"]


def test_eval_with_an_llm_judge(monkeypatch, tmp_path, capsys):
    scripted.register("cli-judge", judge_engine)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", "scripted/cli-judge")
    monkeypatch.chdir(tmp_path)
    try:
        src = tmp_path / "w.pflow"
        src.write_text(JUDGED_SRC)
        data = tmp_path / "d.jsonl"
        data.write_text("".join(json.dumps({"q": q, "answer": a}) + "\n" for q, a in [("a", "a"), ("b", "c"), ("d", "d")]))
        assert main(["eval", str(src), "--data", str(data)]) == 0
        out = capsys.readouterr().out
        assert out.startswith("judge 0.667 · n=3 · errors 0 · calls 6 ")  # 3 answers + 3 judgements
    finally:
        scripted.unregister("cli-judge")


def test_out_rows_are_written_as_they_finish_in_order(tmp_path):
    from promptc.cli.run import RowWriter

    out = tmp_path / "rows.jsonl"
    with RowWriter(str(out)) as w:
        w.add(1, {"i": 1})
        assert out.read_text() == ""  # row 0 is not done: row 1 waits
        w.add(0, {"i": 0})
        assert [json.loads(x)["i"] for x in out.read_text().splitlines()] == [0, 1]  # flushed now
        w.add(2, {"i": 2, "label": "\udfff"})  # a lone surrogate from the dataset
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["i"] for r in rows] == [0, 1, 2] and rows[2]["label"] == "\udfff"


def test_eval_refuses_a_label_with_a_lone_surrogate_when_read(trec_model, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "Who wrote Hamlet?", "label": "\\udfff"}\n{"question": "Where is Rome?", "label": "LOC"}\n')
    out = tmp_path / "o.jsonl"
    assert main(["eval", str(TREC), "--data", str(data), "--out", str(out), "--no-cache"]) == 1
    assert f"{data}:1: a string holds a lone surrogate" in capsys.readouterr().err
    assert not out.exists()  # refused before any row ran


# -- Python workflows, data files, --field, --json, exit codes, Ctrl-C -------------------

TWIN = ROOT / "examples" / "trec" / "trec_workflow.py"


def test_eval_and_run_take_a_decorated_python_workflow(trec_model, capsys):
    assert main(["eval", f"{TWIN}:trec", "--data", str(TREC_TEST), "--limit", "8", "--json"]) == 0
    cap = capsys.readouterr()
    report = json.loads(cap.out)
    assert report["metric"] == "exact_match" and report["n"] == 8 and report["errors"] == 0
    assert report["score"] == pytest.approx(expected_accuracy(8)) and report["calls"] == 8
    assert "exact_match" in cap.err  # the human line goes to stderr with --json
    assert main(["run", str(TWIN), "--input", "question=Who wrote Hamlet?"]) == 0
    assert capsys.readouterr().out == "HUM\n"
    assert main(["run", f"{TWIN}:nope", "--input", "question=x"]) == 1
    assert "has no @promptc.workflow named 'nope' (its workflows: trec)" in capsys.readouterr().err


def test_eval_reads_csv_with_field_mapping(trec_model, tmp_path, capsys):
    import csv

    rows = [json.loads(line) for line in TREC_TEST.read_text().splitlines()][:6]
    data = tmp_path / "d.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "gold"])
        w.writerows([r["question"], r["label"]] for r in rows)
    args = ["eval", str(TREC), "--data", str(data), "--field", "question=text", "--field", "label=gold", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(expected_accuracy(6))
    out = tmp_path / "o.jsonl"
    assert main(["run", str(TREC), "--data", str(data), "--field", "question=text", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 6
    assert main(["run", str(TREC), "--data", str(data), "--field", "question"]) == 2
    assert "expected INPUT=COLUMN" in capsys.readouterr().err


def test_data_without_an_input_or_the_answer_fails_before_any_call(trec_model, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "Who?", "label": "HUM"}\n{"text": "Where?", "label": "LOC"}\n')
    assert main(["eval", str(TREC), "--data", str(data), "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert f"{data}:2: missing field 'question'" in err and "the row has label, text" in err
    assert main(["run", str(TREC), "--data", str(data), "--no-cache"]) == 1
    assert f"{data}:2: missing field 'question'" in capsys.readouterr().err
    unlabeled = tmp_path / "u.jsonl"
    unlabeled.write_text('{"question": "Who?"}\n')
    assert main(["eval", str(TREC), "--data", str(unlabeled), "--no-cache"]) == 1
    assert f"{unlabeled}:1: missing field 'label'" in capsys.readouterr().err
    assert main(["run", str(TREC), "--data", str(unlabeled), "--no-cache"]) == 0  # run needs no answer


def test_eval_exits_1_when_no_row_could_run(trec_model, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"Why is the sky blue {i}?", "label": "DESC"}) + "\n" for i in range(3)))
    assert main(["eval", str(TREC), "--data", str(data), "--no-cache"]) == 1
    cap = capsys.readouterr()
    assert cap.out.startswith("exact_match 0.000 · n=3 · errors 3 ")  # the summary still prints
    assert "no row could run (3 of 3 failed)" in cap.err and f"first error ({data}:1)" in cap.err


def test_a_model_that_keeps_failing_stops_eval_and_optimize(monkeypatch, tmp_path, capsys):
    import promptc
    from promptc.runtime.engine import Engine

    def down(messages):
        scripted.raise_fault("500", "scripted/cli-down")

    scripted.register("cli-down", down)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", "scripted/cli-down")
    monkeypatch.setenv("PROMPTC_TEACHER_MODEL", "scripted/cli-down")
    monkeypatch.chdir(tmp_path)
    rows = [json.loads(line) for line in TREC_TEST.read_text().splitlines()][:30]
    try:
        engine = Engine(retries=0, breaker=3)
        with pytest.raises(promptc.ModelStopped, match="stopped calling scripted/cli-down after 3 failed calls in a row"):
            promptc.evaluate(TREC, rows, engine=engine, concurrency=1)
        assert engine.accounting.totals().calls <= 4  # stopped at the trip, not after 30 rows
        engine = Engine(retries=0, breaker=3)
        with pytest.raises(promptc.ModelStopped):
            promptc.optimize(TREC, rows[:10], rows[10:], engine=engine, run_dir=tmp_path / "run", concurrency=1)
        assert engine.accounting.totals().calls <= 4
    finally:
        scripted.unregister("cli-down")


def test_ctrl_c_in_eval_keeps_the_finished_rows(tmp_path):
    import signal
    import time

    (tmp_path / "slow.py").write_text("import time\n\ndef nap(x: str) -> str:\n    time.sleep(0.4)\n    return x\n")
    (tmp_path / "slow.pflow").write_text(
        'model task = env("PROMPTC_TASK_MODEL", "scripted/echo")\nuse "slow.py" { nap }\n'
        'llm ask(question: text) -> text via task { user "{question}" }\n'
        "workflow w(question: text) -> text { return nap(ask(question)) }\n"
    )
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"q{i}"}) + "\n" for i in range(60)))
    env = {**os.environ, "PROMPTC_TASK_MODEL": "scripted/echo", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = tmp_path / "rows.jsonl"
    p = subprocess.Popen(
        [sys.executable, "-m", "promptc", "eval", "slow.pflow", "--data", str(data), "--out", str(out),
         "--concurrency", "1", "--no-cache"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    kept = out.read_text().splitlines()
    assert 2 <= len(kept) < 60 and [json.loads(line)["inputs"]["question"] for line in kept] == [f"q{i}" for i in range(len(kept))]
    assert f"interrupted; {len(kept)} finished rows written to {out}" in err
    assert "Traceback" not in err and "never awaited" not in err
