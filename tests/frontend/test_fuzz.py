"""Robustness: mutated and random sources never make the compiler raise anything but CompileError."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptc.compiler import compile_source
from promptc.errors import CompileError

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


def _check(src: str, file: str) -> None:
    try:
        compile_source(src, file)
    except CompileError as e:
        text = e.render()  # rendering never fails either
        assert "error:" in text
        if e.span is not None:
            assert e.span.line >= 1 and e.span.col >= 1


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples_raise_only_compile_errors(case):
    i, src = case
    _check(src, str(EXAMPLES[i]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join) | st.text(max_size=80))
def test_random_sources_raise_only_compile_errors(src):
    _check(src, "random.pflow")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_compile(path):
    compile_source(path.read_text(encoding="utf-8"), str(path))
