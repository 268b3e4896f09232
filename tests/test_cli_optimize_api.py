"""`promptc optimize` as a script sees it: Python workflows, data files, --json, quiet
logs, Ctrl-C, --version and MLflow tracking (scripted models, in a subprocess)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.optim.scripted_task import SOURCE, data

ROOT = Path(__file__).resolve().parent.parent

# the scripted task's three models as a rules file: the task answers LOC for "Where"
# questions only once the instruction states the rule; the optimizer states it.
RULES = {
    "rules": [
        {"system": "places are LOC", "match": "Where", "reply": "LOC"},
        {"match": "Question:", "reply": "HUM"},
        {"any": "<current>", "reply": "<proposal>Classify the question as HUM or LOC. Rule: places are LOC.</proposal>"},
        {"any": "feedback", "reply": "{\"instruction\": \"State the rule: places are LOC.\", \"answer_format\": \"ok\"}"},
    ],
    "default": "",
}


@pytest.fixture()
def workdir(tmp_path):
    (tmp_path / "rules.json").write_text(json.dumps(RULES))
    src = SOURCE.replace("scripted/t_task", "scripted/rules.json").replace("scripted/t_backward", "scripted/rules.json")
    (tmp_path / "trec.pflow").write_text(src.replace("scripted/t_optimizer", "scripted/rules.json"))
    train, val = data()
    for name, rows in (("train", train), ("val", val)):
        with open(tmp_path / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "answer"])
            w.writerows([r["question"], r["answer"]] for r in rows)
    return tmp_path


def promptc(cwd, *args, **kw):
    return subprocess.run([sys.executable, "-m", "promptc", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kw)


def test_version():
    r = promptc(ROOT, "--version")
    assert r.returncode == 0 and r.stdout.startswith("promptc ")


def test_json_result_and_no_log_lines(workdir):
    r = promptc(workdir, "optimize", "trec.pflow", "--train", "train.csv", "--val", "val.csv", "--field",
                "question=text", "--steps", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["scores"]["best_val"] >= out["scores"]["start_val"] and out["requests"] > 0
    assert Path(workdir / out["artifact"]).is_file() or Path(out["artifact"]).is_file()
    assert out["run"]["options"]["steps"] == 1 and out["run"]["options"]["fields"] == "question=text"
    assert out["run"]["models"]["task"] == "scripted/rules.json" and out["run"]["seconds"] > 0
    assert not any(line.startswith(("DEBUG", "WARNING", "INFO")) for line in r.stderr.splitlines()), r.stderr


def test_missing_column_fails_before_any_call(workdir):
    r = promptc(workdir, "optimize", "trec.pflow", "--train", "train.csv", "--val", "val.csv", "--no-cache")
    assert r.returncode == 1
    assert "train.csv:2: missing field 'question'" in r.stderr and "the row has answer, text" in r.stderr
    assert not (workdir / "runs").exists()


def test_ctrl_c_names_the_checkpoint_and_the_resume_command(workdir):
    (workdir / "slow.py").write_text("import time\n\ndef nap(x: str) -> str:\n    time.sleep(0.3)\n    return x\n")
    src = (workdir / "trec.pflow").read_text()
    src = src.replace("return strip(raw)", "return nap(strip(raw))").replace("use std.text", 'use "slow.py" { nap }\nuse std.text')
    (workdir / "slow.pflow").write_text(src)
    p = subprocess.Popen(
        [sys.executable, "-m", "promptc", "optimize", "slow.pflow", "--train", "train.csv", "--val", "val.csv",
         "--field", "question=text", "--steps", "50", "--no-cache", "--concurrency", "1"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(6)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err and "--resume" in err


def test_mlflow_logs_the_run_to_a_local_store(workdir):
    pytest.importorskip("mlflow")
    r = promptc(workdir, "optimize", "trec.pflow", "--train", "train.csv", "--val", "val.csv", "--field",
                "question=text", "--steps", "1", "--mlflow", "store")
    assert r.returncode == 0, r.stderr
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((workdir / "store").resolve().as_uri())
    runs = mlflow.search_runs(experiment_names=["promptc-trec"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["steps"] == "1" and run.data.params["model.task"] == "scripted/rules.json"
    assert "best_val" in run.data.metrics and "val" in run.data.metrics
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"trec.pfc", "report.html", "history.jsonl"} <= names
