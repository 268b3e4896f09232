"""The Python API: optimize, evaluate, save and load from Python, on the scripted engine."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import promptc
from promptc.runtime.engine import make_engine
from tests.optim.scripted_task import RULE, SOURCE, Script, data

ROOT = Path(__file__).resolve().parent


@pytest.fixture()
def task_file(tmp_path):
    Script().register()
    path = tmp_path / "trec.pflow"
    path.write_text(SOURCE, encoding="utf-8")
    return path


def test_optimize_trains_from_lists_and_the_result_serves_and_saves(task_file, tmp_path):
    train, val = data()
    engine = make_engine(cache_dir=tmp_path / "cache")
    trained = promptc.optimize(
        str(task_file), train, val, test=val, steps=2, batch_size=8, run_dir=tmp_path / "run", engine=engine
    )
    assert isinstance(trained, promptc.Trained)
    assert trained.scores["best_val"] == 1.0 > trained.scores["start_val"]
    assert trained.scores["test_best"] == 1.0
    assert "instruction" in trained.changed and RULE in trained.program.param("instruction").text
    assert (trained.run_dir / "history.jsonl").is_file() and trained.artifact.is_file()
    assert trained.history and trained.history[0]["step"] >= 0
    run = trained.run  # the metadata summary.json holds, as given
    assert run.options["steps"] == 2 and run.options["batch_size"] == 8 and run.options["test_rows"] == len(val)
    assert run.seed == 0 and run.version == promptc.__version__ and run.models["task"] and run.seconds > 0
    summary = json.loads((trained.run_dir / "summary.json").read_text())
    assert summary["run"]["options"] == json.loads(json.dumps(run.options))
    assert trained.workflow(question="Where is Paris?") == "LOC"
    saved = trained.save(tmp_path / "out" / "trec.pfc")
    again = promptc.load(saved)
    assert again(question="Where is Oslo?") == "LOC" and again.params["instruction"] == trained.workflow.params["instruction"]


def test_evaluate_scores_rows_and_keeps_each_result(task_file, tmp_path):
    _train, val = data()
    ev = promptc.evaluate(str(task_file), val, cache_dir=tmp_path / "cache")
    assert isinstance(ev, promptc.Evaluation)
    assert ev.n == 4 and ev.errors == 0 and ev.metric == "exact_match"
    assert ev.score == pytest.approx(0.5)  # the untrained instruction gets the "Who" rows only
    assert [r.expected for r in ev.rows] == [r["answer"] for r in val]
    assert ev.rows[0].inputs == {"question": val[0]["question"]} and ev.rows[0].where == "data row 1"
    assert sum(c["calls"] + c["cache_hits"] for c in ev.accounting.values()) == 4


def test_data_files_and_field_mapping(task_file, tmp_path):
    _train, val = data()
    path = tmp_path / "val.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "answer"])
        w.writerows([r["question"], r["answer"]] for r in val)
    ev = promptc.evaluate(str(task_file), path, fields={"question": "text"}, cache_dir=tmp_path / "cache")
    assert ev.n == 4 and ev.rows[1].where == f"{path}:3"
    arr = tmp_path / "val.json"
    arr.write_text(json.dumps(val), encoding="utf-8")
    assert promptc.evaluate(str(task_file), arr, cache_dir=tmp_path / "cache").score == ev.score


def test_a_missing_field_fails_before_any_call(task_file, tmp_path):
    script = Script().register()
    train, val = data()
    bad = tmp_path / "train.jsonl"
    bad.write_text("".join(json.dumps({"text": r["question"], "answer": r["answer"]}) + "\n" for r in train))
    with pytest.raises(promptc.DataError, match=r"train.jsonl:1: missing field 'question' .*the row has answer, text"):
        promptc.optimize(str(task_file), bad, val, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache")
    no_answer = [{"question": r["question"]} for r in val]
    with pytest.raises(promptc.DataError, match=r"data row 1: missing field 'answer'"):
        promptc.evaluate(str(task_file), no_answer, cache_dir=tmp_path / "cache")
    assert script.total() == 0


def test_hostile_rows_are_located_when_read(tmp_path):
    from promptc.data import read_data

    surrogate = tmp_path / "s.jsonl"
    surrogate.write_text('{"question": "a"}\n{"question": "\\udfff"}\n', encoding="utf-8")
    with pytest.raises(promptc.DataError, match=r"s.jsonl:2: a string holds a lone surrogate"):
        read_data(surrogate)
    deep = tmp_path / "d.jsonl"
    deep.write_text('{"q": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    with pytest.raises(promptc.DataError, match=r"d.jsonl:1: a value nested more than"):
        read_data(deep)
    with pytest.raises(promptc.DataError, match=r"needs pyarrow: pip install 'promptc\[data\]'|cannot read as Parquet"):
        (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
        read_data(tmp_path / "x.parquet")


DECORATED = '''
import promptc

task = promptc.model(None, default="scripted/t_task")
critic = promptc.model(None, default="scripted/t_backward")
writer = promptc.model(None, default="scripted/t_optimizer")
exact_match = promptc.use("std.metrics", "exact_match")
instruction = promptc.prompt("Classify the question as HUM or LOC.", trainable=True, role="what to classify")


def tidy(text: str) -> str:
    """Strip spaces around the label."""
    return text.strip()


@promptc.llm(via=task, system="{instruction}", user="Question: {question}")
def classify(question: str) -> str: ...


@promptc.workflow(train=promptc.train(metric=exact_match, backward=critic, optimizer=writer))
def qtype(question: str) -> str:
    raw = classify(question)
    return tidy(raw)
'''

DRIVER = '''
import json, sys
sys.path.insert(0, {here!r})
sys.path.insert(0, {tests!r})
from optim.scripted_task import Script, data
Script().register()
import promptc
import qtype
mode = sys.argv[1]
if mode == "train":
    train, val = data()
    trained = promptc.optimize(qtype.qtype, train, val, steps=2, run_dir="run", cache_dir="cache")
    trained.save("qtype.pfc")
    print(json.dumps(trained.workflow(question="Where is Lima?")))
else:
    wf = qtype.qtype.load("qtype.pfc", cache_dir="cache")
    print(json.dumps(wf(question="Where is Lima?")))
    print(json.dumps(promptc.load("qtype.pfc", workflow=qtype.qtype, cache_dir="cache")(question="Who founded Rome?")))
'''


def test_a_decorated_workflow_trains_saves_and_loads_in_another_process(tmp_path):
    (tmp_path / "qtype.py").write_text(DECORATED, encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(here=str(tmp_path), tests=str(ROOT)), encoding="utf-8")
    run = lambda mode: subprocess.run(  # noqa: E731
        [sys.executable, str(driver), mode], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    first = run("train")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ['"LOC"']
    second = run("load")
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ['"LOC"', '"HUM"']  # the trained instruction, the module's own `tidy`


def test_parquet_saved_datasets_and_dataframes(task_file, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    pd = pytest.importorskip("pandas")
    from promptc.data import read_data

    _train, val = data()
    pq.write_table(pa.Table.from_pylist(val), tmp_path / "val.parquet")
    assert list(read_data(tmp_path / "val.parquet")) == val
    datasets.Dataset.from_list(val).save_to_disk(str(tmp_path / "val_ds"))
    assert list(read_data(tmp_path / "val_ds")) == val
    frame = pd.DataFrame(val)
    ev = promptc.evaluate(str(task_file), frame, cache_dir=tmp_path / "cache")
    assert ev.n == 4 and ev.rows[2].expected == val[2]["answer"]
    ev_ds = promptc.evaluate(str(task_file), datasets.Dataset.from_list(val), cache_dir=tmp_path / "cache")
    assert ev_ds.score == ev.score
