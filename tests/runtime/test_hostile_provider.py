"""`promptc eval` / `run` against a provider that fails every call: the run ends early,
with exit 1 and one line naming the model and why (issue 23's "Done when")."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from promptc.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI, Reply  # noqa: E402

FLOW = """\
model m = "openai/hostile" {{ base_url "{url}" }}
llm ask(q: text) -> text via m {{ user "{{q}}" }}
workflow w(q: text) -> text {{ return ask(q) }}
"""

FAILING = {
    "429-retry-after-99999": lambda body: Reply(status=429, body=b'{"error": {"message": "slow down"}}',
                                                headers={"Retry-After": "99999"}),
    "500": lambda body: (500, {"error": {"message": "boom"}}),
    "502-html": lambda body: Reply(status=502, body=b"<html><body>Bad Gateway</body></html>"),
}


def setup(tmp_path: Path, url: str, rows: int = 20) -> tuple[Path, Path]:
    src = tmp_path / "w.pflow"
    src.write_text(FLOW.format(url=url))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"q": f"question {i}", "answer": "ok"}) + "\n" for i in range(rows)))
    return src, data


@pytest.mark.parametrize("mode", FAILING, ids=list(FAILING))
def test_eval_against_a_failing_provider_ends_early_with_one_line(tmp_path, monkeypatch, capsys, mode):
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(FAILING[mode]) as srv:
        src, data = setup(tmp_path, srv.base_url)
        t0 = time.perf_counter()
        code = main(["eval", str(src), "--data", str(data), "--timeout", "5", "--out", str(tmp_path / "o.jsonl")])
        elapsed = time.perf_counter() - t0
        asked = len(srv.requests)
    out, err = capsys.readouterr()
    assert code == 1 and elapsed < 60
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and out == "", err
    assert lines[0].startswith("promptc eval: error: stopped calling openai/hostile after 20 failed calls in a row; last error:")
    assert asked <= 20 + 20  # one attempt per row, plus the run's retry budget
    assert not list((tmp_path / ".promptc" / "cache").glob("*")) or _cache_rows(tmp_path) == 0


def test_a_long_run_stops_at_the_breaker_not_at_the_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(FAILING["500"]) as srv:
        src, data = setup(tmp_path, srv.base_url, rows=400)
        out = tmp_path / "o.jsonl"
        code = main(["run", str(src), "--data", str(data), "--timeout", "5", "--out", str(out), "--concurrency", "4"])
        asked = len(srv.requests)
    err = capsys.readouterr().err
    assert code == 1 and "stopped calling openai/hostile" in err
    assert asked < 60  # not 400 x 5
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["error"] for r in rows)  # the rows that finished are kept, in order


def test_a_healthy_run_is_not_stopped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(lambda body: "ok") as srv:
        src, data = setup(tmp_path, srv.base_url, rows=30)
        assert main(["eval", str(src), "--data", str(data), "--timeout", "5"]) == 0
    assert capsys.readouterr().out.startswith("exact_match 1.000 · n=30")


def _cache_rows(tmp_path: Path) -> int:
    import sqlite3

    db = tmp_path / ".promptc" / "cache" / "calls.sqlite"
    return sqlite3.connect(db).execute("SELECT COUNT(*) FROM calls").fetchone()[0] if db.exists() else 0


def test_usage_that_cannot_be_true_is_a_warning_on_the_summary_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(lambda body: Reply(text="ok", usage={"prompt_tokens": 10**27, "completion_tokens": 3})) as srv:
        src, data = setup(tmp_path, srv.base_url, rows=4)
        assert main(["eval", str(src), "--data", str(data), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "tokens 0 in / 0 out" in out
    assert "warning: usage unknown for 4 calls of openai/hostile (the provider's numbers cannot be true)" in out
