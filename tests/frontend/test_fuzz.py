"""Robustness: mutated and random sources never make the compiler raise anything but CompileError.

The hostile classes (issue 11) also bound time and memory per input: depth (nesting of
expressions, statements and types), size (loop bounds, nested loops, huge lines),
unicode (surrogates, BOM, line separators lark does not count), control characters and
huge numbers; and (issue 23) the shapes that were quadratic in the front end (many `if`s
over many variables, loops carrying many variables, huge enums and records). A few
hundred cases run by default; `PROMPTC_FUZZ_SCALE=10` runs ten times as many.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptc.compiler import compile_source
from promptc.errors import CompileError
from tests.bounds import bounded

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/*.pflow"))
SOURCES = [p.read_text(encoding="utf-8") for p in EXAMPLES]
TOKENS = [
    "{", "}", "(", ")", "[", "]", ",", ";", "\n", "=", "==", "+", ".", "..", "->", ":", '"', '"""', "#",
    "let", "loop", "max", "for", "in", "break if", "return", "llm", "param", "model", "use", "train",
    "workflow", "demos", "prompt", "trainable", "enum[", "list[", "text", "int", "json", "0", "-1", "2.5",
    "true", "x", "question", "{question}", "{{", "}}", "not", "and", "or", "via", "env(",
    "if", "else", "else if", "if x {", "} else {", "for x in xs max 2 {", "for x in",
    "use \"x.pflow\" { w }", "use \"retrieve.pflow\" { multihop_retrieve }", "multihop_retrieve(",
]


SCALE = max(1, int(os.environ.get("PROMPTC_FUZZ_SCALE", "1") or 1))
SECONDS = 10.0  # per input, generous for a loaded 2-core machine (typical: well under 0.1 s)
PEAK_BYTES = 256 * 1024 * 1024


def _check(src: str, file: str) -> None:
    try:
        compile_source(src, file)
    except CompileError as e:
        text = e.render()  # rendering never fails either
        assert "error:" in text
        text.encode("utf-8")  # printable on a UTF-8 terminal (no lone surrogates)
        assert len(text) < 2000  # a huge line or name is shortened
        if e.span is not None:
            assert e.span.line >= 1 and e.span.col >= 1
            assert e.span.file == file


def _check_bounded(src: str, file: str) -> None:
    """`_check`, and it takes at most SECONDS (timed without tracemalloc, which slows the
    passes several times over) and PEAK_BYTES of Python allocations."""
    with bounded(SECONDS):
        _check(src, file)
    with bounded(4 * SECONDS, PEAK_BYTES, timed=False):  # the watchdog still stops a hang
        _check(src, file)


@st.composite
def mutated(draw):
    i = draw(st.integers(0, len(SOURCES) - 1))
    src = SOURCES[i]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "swap", "token", "dup_line"]))
        n = len(src)
        a = draw(st.integers(0, max(0, n - 1)))
        if op == "delete":
            b = min(n, a + draw(st.integers(1, 12)))
            src = src[:a] + src[b:]
        elif op == "insert":
            src = src[:a] + draw(st.text(min_size=1, max_size=4)) + src[a:]
        elif op == "swap" and n > 2:
            b = draw(st.integers(0, n - 1))
            a, b = min(a, b), max(a, b)
            if a != b:
                src = src[:a] + src[b] + src[a + 1 : b] + src[a] + src[b + 1 :]
        elif op == "token":
            src = src[:a] + " " + draw(st.sampled_from(TOKENS)) + " " + src[a:]
        else:
            lines = src.splitlines(True)
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(k, lines[draw(st.integers(0, len(lines) - 1))])
            src = "".join(lines)
    return i, src


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples_raise_only_compile_errors(case):
    i, src = case
    _check(src, str(EXAMPLES[i]))


@settings(max_examples=50 * SCALE, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join) | st.text(max_size=80))
def test_random_sources_raise_only_compile_errors(src):
    _check(src, "random.pflow")


# ---- hostile mutation classes ------------------------------------------------------------

_NEST = {
    # name: (opening, closing) wrapped around an expression N times
    "parens": ("(", ")"),
    "lists": ("[", "]"),
    "nots": ("not ", ""),
}
_UNICODE = ["\ud800", "\udfff", "\ufeff", "\u2028", "\u2029", "\x85", "\u202e", "\u0301", "\U0001f600", "\uffff", "\x00"]
_CONTROL = [chr(c) for c in range(32) if c != 10] + ["\x7f"]


@st.composite
def hostile(draw):
    i = draw(st.integers(0, len(SOURCES) - 1))
    src = SOURCES[i]
    kind = draw(st.sampled_from(["depth", "size", "unicode", "control", "number"]))
    n = len(src)
    at = draw(st.integers(0, max(0, n - 1)))
    if kind == "depth":
        depth = draw(st.integers(50, 1500))
        shape = draw(st.sampled_from([*_NEST, "plus", "fields", "loops", "types"]))
        if shape in _NEST:
            o, c = _NEST[shape]
            expr = o * depth + "x" + c * depth
        elif shape == "plus":
            expr = " + ".join(["x"] * depth)
        elif shape == "fields":
            expr = "x" + ".f" * depth
        if shape == "loops":
            body = "loop max 1 {\n" * depth + "x = x\n" + "}\n" * depth
            src = f"workflow w(x: text) -> text {{\n{body}return x\n}}\n"
        elif shape == "types":
            src = "workflow w(x: " + "list[" * depth + "text" + "]" * depth + ") -> text { return x }\n"
        elif draw(st.booleans()):  # where it is parsed as an expression
            src = f"workflow w(x: json) -> json {{\n  return {expr}\n}}\n"
        else:  # anywhere: in code, a string or a comment
            src = src[:at] + " " + expr + " " + src[at:]
    elif kind == "size":
        shape = draw(st.sampled_from(["for", "nested", "line"]))
        if shape == "for":
            bound = draw(st.sampled_from([10**6, 10**9, 10**18, 2**63 - 1]))
            src = f"workflow w(x: text) -> text {{\n  for i in 0..{bound} {{ x = x }}\n  return x\n}}\n"
        elif shape == "nested":
            depth = draw(st.integers(10, 40))
            body = "loop max 2 {\n" * depth + "x = x\n" + "}\n" * depth
            src = f"workflow w(x: text) -> text {{\nlet y = x\n{body}return x\n}}\n"
        else:
            width = draw(st.integers(10_000, 300_000))
            src = src[:at] + draw(st.sampled_from(["z", '"', "#", "{"])) * width + src[at:]
    elif kind in ("unicode", "control"):
        pool = _UNICODE if kind == "unicode" else _CONTROL
        for _ in range(draw(st.integers(1, 5))):
            at = draw(st.integers(0, len(src)))
            src = src[:at] + draw(st.sampled_from(pool)) + src[at:]
    else:
        digits = draw(st.integers(19, 5000))
        number = draw(st.sampled_from(["9" * digits, "-" + "9" * digits, "1." + "0" * 3 + "e999", "0" * digits + "1"]))
        shape = draw(st.sampled_from(["demos", "for", "let"]))
        if shape == "demos":
            src = f"param d: demos(max = {number})\n" + src
        elif shape == "for":
            src = f"workflow w(x: text) -> text {{\n  for i in 0..{number} {{ x = x }}\n  return x\n}}\n"
        else:
            src = src[:at] + f" {number} " + src[at:]
    return i, kind, src


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile())
def test_hostile_inputs_give_located_errors_in_bounded_time_and_memory(case):
    i, _kind, src = case
    _check_bounded(src, str(EXAMPLES[i]))


# ---- shapes that were quadratic in the front end (issue 23) -------------------------------
#
# Many `if`s over many variables (the `if` lowering once snapshot every variable in scope
# per `if`), branches nested in branches and loops, loops carrying many variables, long
# `else if` chains, and record types and enums with thousands of fields or labels
# (duplicates were found by list scans) and records read field by field or passed where
# another order of their fields is expected (each a scan per field), with a duplicate or a
# type error placed anywhere or nowhere. At these sizes a quadratic stage takes tens of seconds; each case must
# compile or fail located within the same time and memory bounds as the hostile inputs.


def _ifs(draw, n: int) -> str:
    nvars = draw(st.integers(1, n))
    lines = ["use std.text { strip }", "workflow w(x: text, c: bool, d: bool) -> text {"]
    lines += [f"  let v{i} = strip(x)" for i in range(nvars)]
    shape = draw(st.sampled_from(["flat", "else", "nested", "in_loop", "chain"]))
    if shape == "chain":  # if c {..} else if d {..} else if ... : nested ifs, one level per `else if`
        k = min(n, 90)  # the nesting limit is 100 levels
        parts = [f"if c {{ v{i % nvars} = strip(v{i % nvars}) }} else " for i in range(k)]
        lines.append("  " + "".join(parts) + "{ v0 = strip(v0) }")
    else:
        for i in range(n):
            v = f"v{i % nvars}"
            if shape == "flat":
                lines.append(f"  if c {{ {v} = strip({v}) }}")
            elif shape == "else":
                lines.append(f"  if c {{ {v} = strip({v}) }} else {{ {v} = strip(x) }}")
            elif shape == "nested":
                lines.append(f"  if c {{ if d {{ {v} = strip({v}) }} }}")
            else:
                lines.append(f"  loop max 2 {{ if c {{ {v} = strip({v}) }} }}")
    if draw(st.booleans()):  # one statement at fault somewhere: a merge of two types
        at = draw(st.integers(2 + nvars, len(lines)))
        lines.insert(at, "  if c { v0 = 1 }")
    lines += ["  return v0", "}"]
    return "\n".join(lines) + "\n"


def _carried(draw, n: int) -> str:
    lines = ["use std.text { strip }", "workflow w(x: text) -> text {"]
    lines += [f"  let v{i} = strip(x)" for i in range(n)]
    lines.append("  for i in 0..2 {")
    lines += [f"    v{i} = strip(v{i})" for i in range(n)]
    if draw(st.booleans()):
        lines.append(f"    v{draw(st.integers(0, n - 1))} = i")  # a loop variable given another type
    lines += ["  }", "  return v0", "}"]
    return "\n".join(lines) + "\n"


def _labels(draw, n: int, kind: str) -> str:
    names = [f"L{i}" for i in range(n)]
    if draw(st.booleans()):  # a duplicate anywhere
        names.insert(draw(st.integers(0, n)), names[draw(st.integers(0, n - 1))])
    if kind == "enum":
        ty = "enum[" + ", ".join(names) + "]"
        ret = "pick(x)"
    else:
        ty = "{" + ", ".join(f"{m}: text" for m in names) + "}"
        ret = "pick(x).L0"
    return (
        'model m = "scripted/echo"\n'
        f'llm pick(x: text) -> {ty} via m {{ user "{{x}}" }}\n'
        f"workflow w(x: text) -> text {{\n  return {ret}\n}}\n"
    )


def _record_use(draw, n: int) -> str:
    """A record of n fields read many times, or passed where its fields come in another order."""
    fields = ", ".join(f"f{i}: text" for i in range(n))
    src = 'model m = "scripted/echo"\n' + f'llm make(x: text) -> {{{fields}}} via m {{ user "{{x}}" }}\n'
    if draw(st.booleans()):
        reads = draw(st.integers(1, min(n, 5_000)))
        body = "".join(f"  let a{i} = r.f{n - 1 - i}\n" for i in range(reads))
        if draw(st.booleans()):
            body += "  let bad = r.nope\n"  # an unknown field, located
        return src + f"workflow w(x: text) -> text {{\n  let r = make(x)\n{body}  return a0\n}}\n"
    order = list(range(n))
    order.reverse()
    if draw(st.booleans()):  # a field `make` does not give: not assignable, a located error
        order.insert(draw(st.integers(0, n)), n)
    other = ", ".join(f"f{i}: text" for i in order)
    src += f'llm take(r: {{{other}}}) -> text via m {{ user "{{r}}" }}\n'
    return src + "workflow w(x: text) -> text {\n  return take(make(x))\n}\n"


@st.composite
def quadratic(draw):
    kind = draw(st.sampled_from(["ifs", "carried", "enum", "record", "record_use"]))
    if kind == "record_use":
        return kind, _record_use(draw, draw(st.integers(1_000, 30_000)))
    if kind == "ifs":
        return kind, _ifs(draw, draw(st.integers(200, 3_000)))
    if kind == "carried":
        return kind, _carried(draw, draw(st.integers(200, 3_000)))
    return kind, _labels(draw, draw(st.integers(1_000, 30_000)), kind)


@settings(max_examples=12 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(quadratic())
def test_quadratic_shapes_compile_or_fail_located_in_bounded_time_and_memory(case):
    _kind, src = case
    _check_bounded(src, "shape.pflow")


def test_quadratic_shape_errors_point_at_the_statement_at_fault():
    src = _ifs_fixed(2_000, fault_at=1_500)
    with pytest.raises(CompileError) as info:
        compile_source(src, "shape.pflow")
    assert info.value.span.line == src.splitlines().index("  if c { v0 = 1 }") + 1
    labels = ", ".join(f"L{i}" for i in range(20_000)) + ", L7"
    src = f'model m = "scripted/echo"\nllm pick(x: text) -> enum[{labels}] via m {{ user "{{x}}" }}\n'
    src += "workflow w(x: text) -> text {\n  return pick(x)\n}\n"
    with pytest.raises(CompileError) as info:
        compile_source(src, "shape.pflow")
    line = src.splitlines()[1]
    assert info.value.message == "duplicate enum label 'L7'"
    assert (info.value.span.line, info.value.span.col) == (2, line.rindex("L7") + 1)


def _ifs_fixed(n: int, fault_at: int) -> str:
    lines = ["use std.text { strip }", "workflow w(x: text, c: bool) -> text {"]
    lines += [f"  let v{i} = strip(x)" for i in range(n)]
    lines += [f"  if c {{ v{i} = strip(v{i}) }}" for i in range(n)]
    lines.insert(2 + n + fault_at, "  if c { v0 = 1 }")
    lines += ["  return v0", "}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_compile(path):
    compile_source(path.read_text(encoding="utf-8"), str(path))
