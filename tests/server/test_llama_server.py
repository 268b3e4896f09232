"""promptc against a real OpenAI-compatible server: `llama_cpp.server` with the embedded
GGUF (the `llama_server` fixture), reached through litellm's `openai/` provider at the
base URL the `.pflow` declares, compared with the in-process engine on the same rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

from promptc.cli import main

pytestmark = [pytest.mark.server, pytest.mark.local_model]

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
use std.text { strip, first_word }
use std.metrics { exact_match }

model task = "MODEL" { OPTIONS }

param instruction: prompt trainable "what to classify" = "Classify the question as one of ABBR, DESC, ENTY, HUM, LOC, NUM. Reply with the label only."
"""

WORKFLOWS = {
    "trec": """
llm classify(question: text) -> text via task {
  system "{instruction}"
  user   "Question: {question}"
}

workflow trec(question: text) -> text {
  return first_word(strip(classify(question)))
}

train trec { metric exact_match; answer label }
""",
}


def write(tmp: Path, name: str, model: str, options: str, workflow: str = "trec") -> Path:
    path = tmp / name
    path.write_text(HEAD.replace("MODEL", model).replace("OPTIONS", options) + WORKFLOWS[workflow])
    return path


def rows(tmp: Path, name: str, n: int, source: str = "val") -> Path:
    lines = (ROOT / "examples" / "trec" / f"{source}.jsonl").read_text().splitlines()[:n]
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


def eval_cli(path: Path, data: Path, out: Path, capsys) -> str:
    assert main(["eval", str(path), "--data", str(data), "--out", str(out), "--no-cache"]) == 0
    return capsys.readouterr().out.strip()


def test_eval_through_the_server_matches_the_in_process_engine(llama_server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = rows(tmp_path, "val.jsonl", 3)
    local = write(tmp_path, "local.pflow", "local/default", "max_tokens 8")
    served = write(tmp_path, "served.pflow", "openai/smollm2", f'base_url "{llama_server}"; max_tokens 8')
    local_line = eval_cli(local, data, tmp_path / "local.jsonl", capsys)
    served_line = eval_cli(served, data, tmp_path / "served.jsonl", capsys)
    local_rows = [json.loads(x) for x in (tmp_path / "local.jsonl").read_text().splitlines()]
    served_rows = [json.loads(x) for x in (tmp_path / "served.jsonl").read_text().splitlines()]
    assert all(r["error"] is None for r in served_rows), served_rows
    # greedy decoding of the same weights under the same chat template: the same answers,
    # the same scores, and the same calls and token counts
    assert served_rows == local_rows
    assert served_line == local_line, (served_line, local_line)
    assert "calls 3 (cache hits 0)" in served_line


def test_one_optimize_step_through_the_server(llama_server, tmp_path, monkeypatch, capsys):
    """Forward, backward and propose calls all go to the declared base URL (the backward
    engine and the optimizer name only the model string: the engine routes them, see
    `Engine.use_models`). The run's starting validation score, and the step's forward
    calls and tokens, equal the in-process engine's on the same rows."""
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    val = rows(tmp_path, "val.jsonl", 2)
    train = rows(tmp_path, "train.jsonl", 1, "train")
    local = write(tmp_path, "local.pflow", "local/default", "max_tokens 8")
    served = write(tmp_path, "served.pflow", "openai/smollm2", f'base_url "{llama_server}"; max_tokens 8')
    local_val = eval_cli(local, val, tmp_path / "lv.jsonl", capsys)
    local_train = eval_cli(local, train, tmp_path / "lt.jsonl", capsys)
    run_dir = tmp_path / "run"
    args = ["optimize", str(served), "--train", str(train), "--val", str(val), "--steps", "1", "--batch-size", "1",
            "--proposals", "1", "--run-dir", str(run_dir), "--no-cache"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"validation {float(local_val.split()[1]):.3f} ->" in printed, (printed, local_val)
    (step,) = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    acc = step["accounting"]
    assert all(c["errors"] == 0 for c in acc.values()), acc
    fwd = acc["forward"]
    assert f"calls {fwd['requests']} (cache hits 0) · tokens {fwd['prompt_tokens']} in / {fwd['completion_tokens']} out" in (
        local_train
    ), (fwd, local_train)
    train_score = json.loads((tmp_path / "lt.jsonl").read_text())["score"]
    assert step["minibatch_scores"] == [train_score]
    if train_score < 1.0:  # a failing sample: its gradient and a proposal came from the server
        assert acc["backward"]["requests"] >= 1 and acc["propose"]["requests"] >= 1, acc
        assert step["proposals"] and step["proposals"][0]["param"] == "instruction"
