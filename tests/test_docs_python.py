"""docs/python.md: its walkthrough runs as written (on a scripted stand-in for the
embedded model, selected through the workflow's own PROMPTC_TASK_MODEL variable)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = {"rules": [{"match": "Who ", "reply": "HUM"}, {"match": "Where ", "reply": "LOC"}], "default": "DESC"}


def blocks() -> list[str]:
    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_walkthrough_runs(tmp_path):
    shutil.copytree(ROOT / "examples" / "trec", tmp_path / "examples" / "trec")
    (tmp_path / "examples" / "__init__.py").write_text("")
    (tmp_path / "rules.json").write_text(json.dumps(RULES))
    env = dict(os.environ, PROMPTC_TASK_MODEL="scripted/rules.json", PROMPTC_TEACHER_MODEL="scripted/rules.json")
    env["PYTHONPATH"] = str(tmp_path)
    code = blocks()
    assert len(code) == 4 and "promptc.optimize(" in code[2] and "trec.load(" in code[3]

    def run(source: str) -> str:
        r = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    first = run(code[1] + code[2])
    assert re.search(r"before: \d\.\d\d on 20 rows, 0 errors", first)
    assert "HUM" in first.splitlines()[-1]  # the trained workflow answered
    assert (tmp_path / "trec.pfc").is_file() and (tmp_path / "runs" / "trec-py" / "history.jsonl").is_file()
    second = run(code[3])
    assert second.splitlines()[0] == "LOC" and re.search(r"after: \d\.\d\d", second)
