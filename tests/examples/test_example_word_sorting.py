"""examples/word_sorting (BBH word sorting, a held-out task of the demo race's choice rule)
on the scripted engine: compile, free labeled demos from every training row, forward and
exact match on real rows, and a demo search that keeps demos only when they help.

The scripted task model sorts right only when a worked example (a demo turn) is shown;
otherwise it echoes the list unsorted."""

from __future__ import annotations

from example_script import EXAMPLES, rows

from promptc.compiler import compile_file
from promptc.optim.demos import free_labeled
from promptc.optim.trainer import Trainer
from promptc.runtime import scripted
from promptc.runtime.engine import make_engine
from promptc.runtime.evaluate import score
from promptc.runtime.interpreter import run_forward


def task(messages: list[dict]) -> str:
    words = messages[-1]["content"].split("List:", 1)[1].split()
    shown = any(m["role"] == "assistant" for m in messages[1:-1])
    return " ".join(sorted(words) if shown else words)


def test_demos_are_free_and_the_search_keeps_them_when_they_help(monkeypatch, tmp_path):
    model = scripted.register("ex_word_sorting", task)
    monkeypatch.setenv("PROMPTC_TASK_MODEL", model)
    monkeypatch.setenv("PROMPTC_TEACHER_MODEL", model)
    program = compile_file(EXAMPLES / "word_sorting" / "word_sorting.pflow")
    train, val = rows("word_sorting", "train"), rows("word_sorting", "val")[:10]
    assert len(train) == 50 and len(rows("word_sorting", "test")) == 100
    # every training row is a labeled demo: its input and its sorted words
    pool = free_labeled(program, "shots", train)
    assert len(pool) == 50 and pool[0].demo.output == train[0]["target"]

    engine = make_engine(cache_dir=tmp_path / "cache")
    traces = run_forward(program, val, engine)
    start = score(program, traces, val)
    assert sum(start) < len(val)  # unsorted echoes: right only where the list was sorted already
    result = Trainer(program, train, val, engine, steps=0, batch_size=4, run_dir=tmp_path / "run", seed=0).fit()
    assert result.best_val == 1.0 and result.program.param("shots").demos
