"""`promptc inspect` on crafted artifacts: validate first, print every text literally, in linear time."""

from __future__ import annotations

import time

import msgpack
import pytest
from attrs import evolve

import promptc
from promptc import artifact
from promptc.bind import BindError
from promptc.cli import main
from promptc.compiler import compile_source

from tests.test_artifact_hostile import envelope

SRC = (
    'model m = "scripted/echo"\n'
    'param instr: prompt trainable "the [bold]role[/bold]" = "Answer."\n'
    'llm f(q: text) -> text via m { system "{instr}"; user "{q}" }\n'
    "workflow w(q: text) -> text { return f(q) }\n"
)


def program():
    return compile_source(SRC, "w.pflow")


def write(tmp_path, prog=None, extra=None, name="a.pfc"):
    path = tmp_path / name
    artifact.save(prog or program(), path, extra)
    return path


def inspect(path, capsys, *flags):
    code = main(["inspect", str(path), *flags])
    out = capsys.readouterr()
    return code, out.out, out.err


ODD_EXTRA = {
    "scores-list": {"scores": [1, 2]},
    "scores-nested": {"scores": {"best_val": {"x": 1}}},
    "history-map": {"history": {"step": 1}},
    "history-items": {"history": [1, 2]},
    "proposals-scalar": {"history": [{"step": 1, "proposals": 3}]},
    "proposal-text-map": {"history": [{"step": 1, "proposals": [{"param": "instr", "text": {"a": 1}}]}]},
    "source-params-list": {"source_params": ["instr"]},
    "source-text-int": {"source_params": {"instr": {"kind": "prompt", "text": 5}}},
    "accepted-ints": {"history": [{"step": 1, "accepted": [1]}]},
    "filtered-list": {"filtered": [1]},
    "filtered-nested": {"filtered": {"json": {"n": 1}}},
}


@pytest.mark.parametrize("extra", ODD_EXTRA.values(), ids=ODD_EXTRA.keys())
def test_odd_extra_is_one_clean_line(tmp_path, capsys, extra):
    code, out, err = inspect(write(tmp_path, extra=extra), capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "malformed .pfc extra section" in err


def test_markup_in_texts_is_printed_literally(tmp_path, capsys):
    p = program()
    instr = evolve(p.param("instr"), role="ends with [/INST] and [optional] and [/]", text="use [red]x[/red] and [link]")
    path = write(tmp_path, p.with_param(instr), extra={"scores": {"[bold]k": "[/x]"}, "filtered": {"[red]f": 2}})
    code, out, err = inspect(path, capsys, "--history")
    assert code == 0, err
    assert "[/INST]" in out and "[optional]" in out and "[/]" in out
    assert "use [red]x[/red] and [link]" in out and "[bold]k" in out and "[/x]" in out and "[red]f" in out


def test_long_unbroken_line_is_linear(tmp_path, capsys):
    p = program()
    times = []
    for n in (20_000, 100_000):
        path = write(tmp_path, p.with_param(evolve(p.param("instr"), text="x" * n)), name=f"{n}.pfc")
        t0 = time.perf_counter()
        code, out, _ = inspect(path, capsys)
        times.append(time.perf_counter() - t0)
        assert code == 0 and out.count("x") >= n
    assert times[1] < 5  # it took 106 s before


def test_wrongly_typed_record_fields_are_refused(tmp_path, capsys):
    data = artifact.program_to_data(program())
    data["params"][0]["role"] = 5
    payload = msgpack.packb({"program": data, "extra": {}}, use_bin_type=True)
    path = tmp_path / "typed.pfc"
    path.write_bytes(envelope(payload, data["source_hash"]))
    code, _, err = inspect(path, capsys)
    assert code == 1 and "Param.role is int, expected str" in err


def test_invalid_ir_is_refused(tmp_path, capsys):
    data = artifact.program_to_data(program())
    data["workflow"]["nodes"][-1]["args"] = ["nowhere"]
    payload = msgpack.packb({"program": data, "extra": {}}, use_bin_type=True)
    path = tmp_path / "ir.pfc"
    path.write_bytes(envelope(payload, data["source_hash"]))
    code, _, err = inspect(path, capsys)
    assert code == 1 and "invalid IR" in err and err.count("\n") == 1


def test_huge_multiline_change_is_shown_without_a_diff(tmp_path, capsys):
    p = program()
    new = "\n".join(f"line {i}" for i in range(5000))
    extra = {"source_params": {"instr": {"kind": "prompt", "text": "\n".join(f"old {i}" for i in range(5000)), "demos": []}}}
    t0 = time.perf_counter()
    code, out, err = inspect(write(tmp_path, p.with_param(evolve(p.param("instr"), text=new)), extra=extra), capsys)
    assert code == 0, err
    assert "(changed)" in out and "line 4999" in out and time.perf_counter() - t0 < 5


@pytest.mark.parametrize(
    "where,value,message",
    [
        (("llms", 0, "returns"), {"kind": "nonsense"}, "not a valid type"),
        (("llms", 0, "returns"), {"kind": "list"}, "not a valid type"),
        (("params", 0, "kind"), "weights", "unknown kind"),
        (("llms", 0, "messages", 0, "role"), "root", "unknown role"),
    ],
)
def test_unknown_kinds_are_refused(tmp_path, capsys, where, value, message):
    data = artifact.program_to_data(program())
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    payload = msgpack.packb({"program": data, "extra": {}}, use_bin_type=True)
    path = tmp_path / "kinds.pfc"
    path.write_bytes(envelope(payload, data["source_hash"]))
    code, _, err = inspect(path, capsys)
    assert code == 1 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda p: evolve(p, models=()), "llm 'f' uses undeclared model 'm'"),
        (lambda p: evolve(p, llms=(evolve(p.llms[0], demos="shots"),)), "undeclared demos param 'shots'"),
        (lambda p: evolve(p, llms=(), passes=()), "calls undeclared 'f'"),
    ],
    ids=["model", "demos", "llm-with-no-passes"],
)
def test_undeclared_references_are_refused(tmp_path, capsys, change, message):
    # the runtime would look these up and fail with an internal KeyError
    path = tmp_path / "refs.pfc"
    artifact.save(change(program()), path)
    code, _, err = inspect(path, capsys)
    assert code == 1 and message in err and err.count("\n") == 1


def _sealed(tmp_path, data, extra=None, name="m.pfc"):
    path = tmp_path / name
    path.write_bytes(envelope(msgpack.packb({"program": data, "extra": extra or {}}, use_bin_type=True), data["source_hash"]))
    return path


def _calling(module: str) -> dict:
    """The program's data with its llm node replaced by a call of `g` from `module`."""
    data = artifact.program_to_data(program())
    data["functions"] = [{"name": "g", "module": module, "attr": "g", "params": [["s", {"kind": "text"}]]}]
    node = next(n for n in data["workflow"]["nodes"] if n["op"] == "llm")
    node.update(op="call", target="g")
    data.pop("backward", None)  # it applied the llm's rule
    return data


def test_a_module_name_with_a_nul_is_one_line(tmp_path, capsys):
    code, out, err = inspect(_sealed(tmp_path, _calling("he\x00lp.py")), capsys)
    assert code == 1 and out == "" and err.count("\n") == 1 and "no usable module name" in err


@pytest.mark.parametrize("module", ["x" * 300 + ".py", "a/" * 3000 + "x.py", "loop.py"], ids=["long-name", "long-path", "symlink-loop"])
def test_user_code_that_cannot_be_looked_at_is_said_so(tmp_path, capsys, module):
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")
    path = _sealed(tmp_path, _calling(module))
    code, out, err = inspect(path, capsys)
    assert code == 0 and err == "" and "(nofileofthatnamecanbeimported)" in "".join(out.split())  # folded
    with pytest.raises(BindError, match="cannot use module file") as e:
        promptc.load(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "demo",
    [{"inputs": [["q", "x"]]}, {"output": "y"}, {"inputs": "q", "output": "y"}],
    ids=["no-output", "no-inputs", "inputs-text"],
)
def test_a_stored_demo_without_its_parts_is_one_line(tmp_path, capsys, demo):
    extra = {"source_params": {"instr": {"kind": "demos", "text": "", "demos": [demo]}}}
    code, out, err = inspect(write(tmp_path, extra=extra), capsys)
    assert code == 1 and out == "" and err.count("\n") == 1 and "malformed .pfc extra section" in err


def test_what_the_checks_miss_is_still_one_line(tmp_path, capsys, monkeypatch):
    # a last resort: a failure while showing (here a stand-in bug) is one line, exit 1
    import promptc.params_view as view

    monkeypatch.setattr(view, "param_text", lambda d: 1 / 0)
    code, out, err = inspect(write(tmp_path), capsys)
    assert code == 1 and err.count("\n") == 1 and "cannot show this artifact (ZeroDivisionError" in err


def test_json_is_one_parseable_object_with_the_changes(tmp_path, capsys):
    import json

    trained = program().with_param(evolve(program().param("instr"), text="Answer in one word."))
    history = [{"step": 1, "kind": "prompts", "minibatch_score": 0.5, "failing": 1, "backward_calls": 1, "best": 1.0,
                "accepted": ["instr"], "proposals": [{"param": "instr", "reason": "", "text": "Answer in one word.",
                                                      "verdict": "accepted"}]}]
    extra = {"scores": {"start_val": 0.5, "best_val": 1.0}, "history": history,
             "source_params": {"instr": {"kind": "prompt", "text": "Answer."}}}
    path = write(tmp_path, trained, extra)
    code, out, err = inspect(path, capsys, "--json")
    assert code == 0 and err == "" and out.count("\n") == 1
    d = json.loads(out)
    assert d["workflow"] == "w" and d["inputs"] == {"q": "text"} and d["scores"]["best_val"] == 1.0
    assert d["params"]["instr"]["changed"] is True and d["params"]["instr"]["value"]["text"] == "Answer in one word."
    assert d["source_params"]["instr"]["text"] == "Answer." and "history" not in d
    code, out, _ = inspect(path, capsys, "--json", "--history")
    assert code == 0 and json.loads(out)["history"][0]["proposals"][0]["verdict"] == "accepted"
    code, out, err = inspect(write(tmp_path, extra={"scores": [1]}, name="b.pfc"), capsys, "--json")
    assert code == 1 and out == "" and "malformed .pfc extra section" in err
