"""Codec-level mutants: artifacts that pass the envelope and the checksum.

An attacker (or a buggy tool) can decode a `.pfc`'s payload, change any field, re-encode
it and recompute the checksum. Each mutant here is made that way, with promptc's own
encoder (`artifact.program_to_data`, `artifact._pack`) and a valid sha256: fields get
values of other types or other records' values (names, targets, arities), keys are
dropped or added, lists lose, repeat or gain items, and the trainer's `extra` section is
damaged the same way. Every mutant must then, within a time bound:

- `artifact.loads` / `promptc.load`: load, or raise one promptc error (one line);
- `wf(...)`: return, or raise `PromptcRunError` (or `ProgramError` / `BindError`: a
  program that cannot run at all, refused before any sample runs);
- `wf.batch(...)`: return one `Result` per row, a bad row failing alone;
- `promptc inspect`: exit 0 or 1, never a traceback;

never any other exception; every tenth mutant also goes through `promptc run --data`
with the real engine (exit 0 or 1, no "internal error"). Each mutant has 10 s (and one in
four at most `MAX_BYTES` of Python allocations). 300 mutants
run by default (about 10 s; one in eight starts from the program before unrolling);
`PROMPTC_FUZZ_SCALE=10` runs ten times as many. A failure names its seed: `mutant(seed)`
rebuilds it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import pytest
from attrs import evolve

from promptc import artifact
from promptc.artifact import ArtifactError
from promptc.bind import BindError
from promptc.cli import main as cli_main
from promptc.compiler import compile_source
from promptc.ir import Demo
from promptc.runtime import scripted
from promptc.runtime.interpreter import ProgramError
from promptc.runtime.records import CallResult
from promptc.runtime.workflow import PromptcRunError, Result, load
from tests.bounds import bounded

SCALE = max(1, int(os.environ.get("PROMPTC_FUZZ_SCALE", "1") or 1))
SEEDS = 300 * SCALE
MAX_BYTES = 64 * 2**20  # a mutant's peak of Python allocations (they take under 1 MB)

SRC = """\
use std.text { strip, join }
use std.metrics { exact_match }
use "helpers.py" { shout }

model m = "scripted/fuzz" { temperature 0.5 }

param instr: prompt trainable "the instruction" = "Answer yes or no."
param shots: demos(max = 2) trainable "examples"

llm classify(q: text) -> enum[yes, no] via m {
  system "{instr}"
  demos shots
  user "Q: {q}"
}
llm extract(q: text) -> {label: text, score: float} via m { user "extract {q}" }
llm step(q: text, n: int) -> text via m { user "step {q} {n}" }

workflow w(q: text, xs: list[text]) -> text {
  let r = extract(q)
  let out = strip(r.label)
  if classify(q) == "yes" and r.score > 0.5 {
    out = out + "!"
  } else {
    out = step(out, 2)
  }
  for x in xs max 2 {
    out = out + x
  }
  loop max 2 {
    out = step(out, 1)
    break if out == "stop" or r.score < 0.1
  }
  let both = [out, xs[0], shout(out)]
  return join(both, " ")
}

train w { metric exact_match }
"""

HELPERS = 'def shout(s: str) -> str:\n    """Upper-case text."""\n    return s.upper()\n'

EXTRA = {
    "scores": {"best_val": 0.5, "test": 0.25},
    "source_params": {
        "instr": {"kind": "prompt", "text": "Answer.", "demos": [], "nearest": 0},
        "shots": {"kind": "demos", "text": "", "demos": [{"inputs": [["q", "x?"]], "output": "no"}], "nearest": 0},
    },
    "filtered": {"repetition": 2},
    "history": [
        {"step": 1, "minibatch_score": 0.5, "failing": 2, "backward_calls": 3, "best": 0.5, "accepted": ["instr"],
         "proposals": [{"param": "instr", "reason": "", "text": "Answer yes.", "accepted": True}]},
    ],
}


def answer(messages: list, options: dict) -> str:
    """The model's answer, in the shape the request asks for."""
    if options.get("response_format") is not None:
        return '{"label": " yes ", "score": 0.9}'
    if options.get("choices"):
        return str(options["choices"][0])
    return "ok " + str(len(messages))


scripted.register("fuzz", answer)  # what `promptc run` calls through the real engine


class Engine:
    """Answers every request at once (the engine interface, for `promptc.load`)."""

    async def call(self, req) -> CallResult:
        options = {"response_format": req.response_format, "choices": req.choices}
        return CallResult(text=answer(list(req.messages), options), prompt_tokens=3, completion_tokens=1)


@functools.cache
def base(until: str | None = None) -> tuple[dict, str]:
    """The base program as the codec's data (with two demos), and its source hash; with
    `until`, as the passes up to that one left it (loops and all, before `unroll`)."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "helpers.py").write_text(HELPERS)
        p = compile_source(SRC, str(Path(d) / "base.pflow"), until=until)
    shots = evolve(p.param("shots"), demos=(Demo((("q", "Is it?"),), "yes"), Demo((("q", "No?"),), "no")))
    p = p.with_param(shots)
    return artifact.program_to_data(p), p.source_hash


# -- mutations -----------------------------------------------------------------------------

FIELD_NAMES = ("op", "args", "target", "guard", "type", "loop", "name", "time", "span", "kind", "demos", "output",
               "inputs", "params", "returns", "messages", "uses", "module", "attr", "nearest", "max_demos", "elem",
               "fields", "labels", "rule", "feeds", "branches", "cond", "node", "llm", "$")
ODD = (None, True, False, 0, -1, 1, 7, 2**31, -(2**63), 2**64 - 1, 0.0, -0.5, math.inf, math.nan, 1e308, "", "x",
       "\x00", "std.\x00", "a\x00b.py", "../x.py", "/etc/passwd", "{q}", "{", "}}", "\ud800".encode("utf-8", "surrogatepass"),
       b"", b"\x00\xff", [], [[]], ["q"], [1, 2], {}, {"k": 1}, {1: 2}, {"": None}, ("t", 1), [["q", "x"]],
       {"kind": "list"}, {"kind": "record", "fields": [["a", {"kind": "text"}]]}, {"kind": "enum", "labels": []})


# a text turned into one a file system, an import, a template or a terminal chokes on
HOSTILE = (lambda s: s + "\x00", lambda s: "../" + s, lambda s: "/" + s, lambda s: s * 300, lambda s: "{" + s,
           lambda s: s + "}", lambda s: "std." + s, lambda s: "__" + s + "__", lambda s: s + "\n[red]x[/red]\x1b[2J",
           lambda s: s + "/" + s, lambda s: "", lambda s: s.replace(".", "\x00"))


def _slots(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) pair in `data`: the places a mutation can change."""
    out, stack = [], [data]
    while stack:
        c = stack.pop()
        items = c.items() if type(c) is dict else enumerate(c) if type(c) in (list, tuple) else ()
        for k, v in items:
            if type(c) is not tuple:
                out.append((c, k))
            if type(v) in (dict, list, tuple):
                stack.append(v)
    return out


def _strings(data: Any) -> list[str]:
    return [c[k] for c, k in _slots(data) if type(c[k]) is str] or ["x"]


def _mutate(rng: random.Random, root: dict, whole: dict | None = None) -> str:
    """One random change somewhere in `root` (in place; values may come from `whole`);
    what it did, for a failure message."""
    slots = _slots(root)
    pool = _slots(whole) if whole is not None else slots
    c, k = rng.choice(slots)
    old = c[k]
    kind = rng.choice(("odd", "odd", "other", "other", "string", "hostile", "drop", "list", "add", "op", "deep"))
    if kind == "odd":
        c[k] = copy.deepcopy(rng.choice(ODD))
    elif kind == "other":  # a value found elsewhere: right types, wrong meanings
        oc, ok = rng.choice(pool)
        c[k] = copy.deepcopy(oc[ok])
    elif kind == "string" and type(old) is str:
        c[k] = rng.choice(_strings(whole if whole is not None else root))
    elif kind == "hostile" and type(old) is str:
        c[k] = rng.choice(HOSTILE)(old)
    elif kind == "drop" and type(c) is dict:
        del c[k]
        return f"drop [{k!r}]"
    elif kind == "list" and type(old) is list:
        how = rng.choice(("pop", "dup", "clear", "swap", "add"))
        if how == "pop" and old:
            old.pop(rng.randrange(len(old)))
        elif how == "dup" and old:
            old.insert(rng.randrange(len(old) + 1), copy.deepcopy(rng.choice(old)))
        elif how == "clear":
            old.clear()
        elif how == "swap" and len(old) > 1:
            i, j = rng.randrange(len(old)), rng.randrange(len(old))
            old[i], old[j] = old[j], old[i]
        else:
            old.append(copy.deepcopy(rng.choice(ODD + tuple(_strings(root)[:20]))))
        return f"list {how} at [{k!r}]"
    elif kind == "add" and type(old) is dict:
        old[rng.choice(FIELD_NAMES)] = copy.deepcopy(rng.choice(ODD + tuple(_strings(root)[:20])))
    elif kind == "op" and type(old) is dict and "op" in old:
        old["op"] = rng.choice(("input", "const", "llm", "call", "field", "index", "list", "prim", "guard",
                                "select", "loop", "loss", "sum", "grad"))
    elif kind == "deep":
        c[k] = [[[[["x"]]]]] if rng.random() < 0.5 else {"a": {"b": {"c": [1, {"d": None}]}}}
    else:
        c[k] = copy.deepcopy(rng.choice(ODD))
    return f"{kind} at [{k!r}]: {_short(old)} -> {_short(c.get(k) if type(c) is dict else c[k])}"


OPS = ("input", "const", "llm", "call", "field", "index", "list", "prim", "guard", "select", "loop")


def _mutate_node(rng: random.Random, program: dict) -> str:
    """One change to a workflow node: what the runtime walks (arity, targets, ops, order)."""
    nodes = program["workflow"]["nodes"]
    i = rng.randrange(len(nodes))
    n = nodes[i]
    names = [m["name"] for m in nodes]
    other = rng.choice(nodes)
    kind = rng.choice(("target", "target", "op", "args", "args", "guard", "type", "order", "drop", "dup"))
    if kind == "target":
        n["target"] = copy.deepcopy(other.get("target") if rng.random() < 0.5 else rng.choice(ODD))
    elif kind == "op":
        n["op"] = rng.choice(OPS)
    elif kind == "args":
        args = n.setdefault("args", [])
        how = rng.choice(("pop", "add", "clear", "swap"))
        if how == "pop" and args:
            args.pop(rng.randrange(len(args)))
        elif how == "add":
            args.insert(rng.randrange(len(args) + 1), rng.choice(names[:i] or names))
        elif how == "swap":
            n["args"] = copy.deepcopy(other.get("args", []))
        else:
            args.clear()
        kind = f"args {how}"
    elif kind == "guard":
        n["guard"] = rng.choice(names[:i] or names)
    elif kind == "type":
        if "type" in other:
            n["type"] = copy.deepcopy(other["type"])
        else:
            n.pop("type", None)
    elif kind == "order":
        j = rng.randrange(len(nodes))
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif kind == "drop":
        del nodes[i]
    else:
        nodes.insert(rng.randrange(len(nodes) + 1), copy.deepcopy(n))
    return f"node {kind} at {n.get('name')!r}: {_short(n)}"


def _mutate_decl(rng: random.Random, program: dict) -> str:
    """One change inside a declaration (llm, param, function, model, train): generic, local."""
    groups = [g for g in ("llms", "params", "functions", "models") if program.get(g)]
    records = [r for g in groups for r in program[g]] + ([program["train"]] if program.get("train") else [])
    return "in a declaration: " + _mutate(rng, rng.choice(records), program)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) < 60 else text[:57] + "..."


def mutant(seed: int) -> tuple[bytes, list[str]]:
    """The `.pfc` bytes of mutant `seed` (valid envelope and checksum) and what was changed."""
    rng = random.Random(seed)
    program, source_hash = base("typecheck" if seed % 8 == 7 and seed >= 0 else None)  # some with their loops
    body = {"program": copy.deepcopy(program), "extra": copy.deepcopy(EXTRA)}
    changes = [_change(rng, body) for _ in range(rng.choice((1, 1, 1, 2, 3)))] if seed >= 0 else []
    claimed = body["program"].get("source_hash") if type(body["program"]) is dict else None
    return sealed(body, claimed if type(claimed) is str else source_hash), changes


def _change(rng: random.Random, body: dict) -> str:
    program = body["program"]
    roll = rng.random()
    if type(program) is not dict or roll < 0.25:
        return _mutate(rng, body)  # anywhere, `extra` included
    try:
        if roll < 0.6:
            return _mutate_node(rng, program)
        if roll < 0.8:
            return _mutate_decl(rng, program)
    except (KeyError, TypeError, ValueError, IndexError):  # an earlier change moved things
        pass
    return _mutate(rng, program)


def sealed(body: dict, source_hash: str) -> bytes:
    """`body` (program and extra data) as a `.pfc` with a valid envelope and checksum."""
    payload = artifact._pack(body)
    envelope = {"magic": artifact.MAGIC, "format": artifact.FORMAT, "source_hash": source_hash,
                "payload": payload, "sha256": hashlib.sha256(payload).hexdigest()}
    return msgpack.packb(envelope, use_bin_type=True)


# -- what each mutant must do --------------------------------------------------------------

REFUSED = (ArtifactError, BindError, ProgramError)


def _inputs(wf) -> dict[str, Any]:
    values = {"text": "hi", "enum": "yes", "int": 1, "float": 0.5, "bool": True, "list": ["a", "b"], "json": {"a": 1}}
    return {name: values.get(t.kind, "x") for name, t in wf.program.workflow.inputs}


def _one_line(e: BaseException) -> None:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg, f"{type(e).__name__}: {msg!r}"


def check_mutant(data: bytes, folder: Path, capsys, cli_run: bool = False) -> str:
    """What the mutant did: 'refused', 'ran' (or a failed assertion / an escaped exception).
    With `cli_run`, `promptc run` runs it too, through the real engine."""
    path = folder / "m.pfc"
    path.write_bytes(data)
    code = cli_main(["inspect", str(path)])
    out = capsys.readouterr()
    assert code in (0, 1), code
    assert "Traceback" not in out.err + out.out, out.err[-2000:]
    if code == 1:
        assert out.err.count("\n") == 1, out.err[-2000:]
    if cli_run:
        rows = folder / "rows.jsonl"
        rows.write_text('{"q": "hi", "xs": ["a"]}\n{"q": "hi", "xs": []}\n{"q": 5}\n')
        code = cli_main(["run", str(path), "--data", str(rows), "--no-cache", "--cache-dir", str(folder / "cache")])
        out = capsys.readouterr()
        assert code in (0, 1), (code, out.err[-2000:])
        assert "Traceback" not in out.err and "internal error" not in out.err, out.err[-2000:]
    try:
        wf = load(path, engine=Engine())
    except REFUSED as e:
        _one_line(e)
        assert code == 1 or not isinstance(e, ArtifactError), "inspect showed what load refuses"
        return "refused"
    try:
        good = _inputs(wf)
        try:
            wf(**good)
        except (PromptcRunError, ProgramError, BindError) as e:
            if not isinstance(e, PromptcRunError):
                return "refused"
        rows = [good, {k: 12345 for k in good}, {}, good]
        results = wf.batch(rows)
        assert len(results) == len(rows) and all(isinstance(r, Result) for r in results)
        assert all(r.error is None or "\n" not in r.error for r in results)
    finally:
        wf.close()
    return "ran"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "helpers.py").write_text(HELPERS)
    return tmp_path


def test_the_base_artifact_runs(folder, capsys):
    data, changes = mutant(-1)  # no change
    assert changes == [] and check_mutant(data, folder, capsys) == "ran"
    wf = load(folder / "m.pfc", engine=Engine())
    try:
        assert wf(q="hi", xs=["a", "b"]) == "ok 1 a OK 1"
        results = wf.batch([{"q": "hi", "xs": ["a"]}, {"q": "hi", "xs": []}])
        assert results[0].ok and not results[1].ok and "index 0 out of range" in results[1].error
    finally:
        wf.close()


def test_codec_level_mutants_load_run_or_are_refused(folder, capsys):
    outcomes: dict[str, int] = {}
    failures = []
    check_mutant(mutant(-1)[0], folder, capsys, cli_run=True)  # imports (litellm...) outside the bounds
    for seed in range(SEEDS):
        data, changes = mutant(seed)
        try:  # memory measured on one mutant in four (tracemalloc triples the time)
            with bounded(10, MAX_BYTES if seed % 4 == 0 else None):
                got = check_mutant(data, folder, capsys, cli_run=seed % 10 == 0)
        except Exception as e:  # the finding: reported with the seed that rebuilds it
            failures.append(f"seed {seed} {changes}: {type(e).__name__}: {_short(str(e))}")
            got = "failed"
        outcomes[got] = outcomes.get(got, 0) + 1
    assert not failures, f"{len(failures)} of {SEEDS} mutants:\n" + "\n".join(failures[:30])
    # the mutants reach the runtime, not only the decoder's type checks
    assert outcomes.get("ran", 0) >= SEEDS // 20 and outcomes.get("refused", 0) >= SEEDS // 10, outcomes
