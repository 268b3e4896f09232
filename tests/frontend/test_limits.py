"""Hostile `.pflow` input: each reproduction of issue 11 gives a located `CompileError`, fast."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from promptc.compiler import compile_file, compile_source
from promptc.errors import CompileError
from promptc.frontend.limits import MAX_DEPTH

HEAD = 'model m = "scripted/echo"\nllm f(q: text) -> text via m { user "{q}" }\n'


def wf(body: str, ty: str = "text") -> str:
    return HEAD + f"workflow w(q: {ty}) -> {ty} {{\n{body}\n}}\n"


def error(src: str, file: str = "x.pflow") -> CompileError:
    t0 = time.perf_counter()
    with pytest.raises(CompileError) as info:
        compile_source(src, file)
    assert time.perf_counter() - t0 < 5
    e = info.value
    assert e.span is not None and e.span.file == file and e.span.line >= 1 and e.span.col >= 1
    return e


DEEP = {
    "plus-chain": (wf("  return " + " + ".join(["q"] * 1000)), 4, 10),
    "nots": (wf("  return " + "not " * 990 + "q", "bool"), 4, 10 + 4 * (MAX_DEPTH - 3)),
    "fields": (wf("  return q" + ".f" * 990, "json"), 4, 10),
    "list-literal": (wf("  return " + "[" * 500 + "q" + "]" * 500, "json"), 4, 10 + MAX_DEPTH - 3),
    "loops": (wf("  let x = q\n" + "loop max 1 {\n" * 340 + "x = f(x)\n" + "}\n" * 340 + "  return x"), None, 1),
    "list-type": (HEAD.replace("f(q: text)", "f(q: " + "list[" * 330 + "text" + "]" * 330 + ")") + "workflow w(q: text) -> text { return q }\n", 2, 7),
}


@pytest.mark.parametrize("src,line,col", DEEP.values(), ids=DEEP.keys())
def test_deep_nesting_is_a_located_error(src, line, col):
    e = error(src)
    assert "nested too deeply" in e.message and f"more than {MAX_DEPTH} levels" in e.message
    if line is not None:
        assert (e.span.line, e.span.col) == (line, col)


@pytest.mark.parametrize("src", [
    wf("  let x = q\n" + "if x == q {\n" * 10_000 + "x = f(x)\n" + "}\n" * 10_000 + "  return x"),
    wf("  let x = q\n  " + "if x == q { x = f(x) } else " * 10_000 + "{ x = f(x) }\n  return x"),
], ids=["nested-ifs", "else-if-chain"])
def test_ten_thousand_nested_ifs_are_a_located_statement_error(src):
    e = error(src)
    assert e.message == f"the statement is nested too deeply (more than {MAX_DEPTH} levels)"
    assert e.span.line >= 3


def test_nesting_just_under_the_limit_compiles():
    compile_source(wf("  return " + " + ".join(["q"] * (MAX_DEPTH - 5))), "x.pflow")
    nested = wf("  let x = q\n" + "loop max 1 {\n" * (MAX_DEPTH - 5) + "x = f(x)\n" + "}\n" * (MAX_DEPTH - 5) + "  return x")
    compile_source(nested, "x.pflow")


def test_huge_for_loop_is_refused_before_unrolling():
    e = error(wf("  let x = q\n  for i in 0..1000000000 { x = f(x) }\n  return x"))
    assert (e.span.line, e.span.col) == (5, 3)
    assert "loop 'i'" in e.message and "1,000,000,000 steps" in e.message and "PROMPTC_MAX_NODES" in e.message


def test_nested_doubling_loops_name_the_loop_that_crosses_the_limit():
    src = wf("  let x = q\n" + "loop max 2 {\n" * 30 + "x = f(x)\n" + "}\n" * 30 + "  return x")
    e = error(src)
    assert "loop 'step." in e.message and "(2 steps of" in e.message


def test_unroll_limit_is_overridable(monkeypatch):
    src = wf("  let x = q\n  for i in 0..50 { x = f(x) }\n  return x")
    compile_source(src, "x.pflow")
    monkeypatch.setenv("PROMPTC_MAX_NODES", "100")
    assert "more than the limit of 100 " in error(src).message


@pytest.mark.parametrize(
    "literal,what",
    [("99999999999999999999", "integer"), ("-99999999999999999999", "integer"), ("1.0e999", "number")],
)
def test_out_of_range_numbers_are_located(literal, what):
    e = error(wf(f"  let n = {literal}\n  return q"))
    assert (e.span.line, e.span.col) == (4, 11) and f"{what} " in e.message and "out of range" in e.message


def test_huge_demos_bound_is_located():
    e = error(HEAD + "param d: demos(max = 99999999999999999999)\nworkflow w(q: text) -> text { return f(q) }\n")
    assert (e.span.line, e.span.col) == (3, 22)
    e = error(HEAD + "param d: demos(max = 1000000)\nworkflow w(q: text) -> text { return f(q) }\n")
    assert "at most" in e.message


def test_lone_surrogate_is_located():
    e = error(wf('  return "ab\ud800"'))
    assert (e.span.line, e.span.col) == (4, 13) and "U+D800" in e.message
    e.render().encode("utf-8")  # printable


@pytest.mark.parametrize("sep", ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_excerpt_is_the_line_lark_counts(sep):
    # `str.splitlines()` breaks on these too; lark does not, so the excerpt must not either
    src = HEAD + f"# one{sep}comment\nworkflow w(q: text) -> text {{\n  return qq\n}}\n"
    e = error(src)
    assert (e.span.line, e.span.col) == (5, 10)
    assert e.render().splitlines()[1] == "  " + "  return qq"


def test_crlf_source_excerpt():
    e = error(wf("  return qq").replace("\n", "\r\n"))
    assert e.render().splitlines()[1] == "    return qq"


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.pflow"
    path.write_bytes(b"\xef\xbb\xbf" + wf("  return f(q)").encode())
    compile_file(path)
    compile_source("\ufeff" + wf("  return f(q)"), "x.pflow")


def test_bom_does_not_shift_columns(tmp_path):
    path = tmp_path / "bom.pflow"
    path.write_bytes(b"\xef\xbb\xbf" + wf("  return qq").encode())
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert (info.value.span.line, info.value.span.col) == (4, 10)


def test_undecodable_bytes_are_located(tmp_path):
    path = tmp_path / "bad.pflow"
    path.write_bytes(wf('  return "caf\xff"').encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(CompileError) as info:
        compile_file(path)
    e = info.value
    assert (e.span.file, e.span.line, e.span.col) == (str(path), 4, 14) and "0xFF" in e.message
    assert "^" in e.render()


def test_error_on_a_huge_line_prints_a_window_around_the_caret():
    src = wf("  return " + "q + " * 1 + '"' + "x" * 1_000_000 + '" + qq')
    text = error(src).render()
    assert len(text) < 1000
    excerpt, caret = text.splitlines()[1:3]
    assert excerpt[caret.index("^") : caret.index("^") + 2] == "qq"


def test_huge_name_in_a_message_is_shortened():
    text = error(wf("  return " + "z" * 1_000_000)).render()
    assert len(text) < 1000


def test_cli_nested_error_is_located(tmp_path):
    path = tmp_path / "deep.pflow"
    path.write_text(wf("  return " + " + ".join(["q"] * 1000)), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "promptc", "compile", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{path}:4:10: error: the expression is nested too deeply")


def test_integer_with_thousands_of_leading_zeros():
    # found by the fuzz test: int() refuses strings of over 4,300 digits
    compile_source(wf("  let n = " + "0" * 5000 + "1\n  return q"), "x.pflow")
    e = error(wf("  let n = -" + "0" * 5000 + "99999999999999999999\n  return q"))
    assert "out of range" in e.message


def test_decorated_workflow_nested_too_deeply_is_located(tmp_path):
    import importlib.util

    path = tmp_path / "deep_wf.py"
    path.write_text(
        "import promptc\n\n@promptc.workflow\ndef w(q: str) -> str:\n    return " + " + ".join(["q"] * 1500) + "\n"
    )
    spec = importlib.util.spec_from_file_location("deep_wf", path)
    mod = importlib.util.module_from_spec(spec)
    with pytest.raises(CompileError) as info:
        spec.loader.exec_module(mod)
    e = info.value
    assert (e.span.file, e.span.line) == (str(path), 3) and "nested too deeply" in e.message


@pytest.mark.parametrize("body", ["x = f(x)", 'x = f(x)\nbreak if x == "a"'], ids=["no-break", "break"])
@pytest.mark.parametrize("depth", [1, 3, 6])
def test_unroll_size_estimate_bounds_the_real_size(body, depth):
    from promptc.passes.unroll import unroll, unrolled_size

    # outer loops alternate `for` and `loop max`; the innermost is a `loop max` (it may break)
    outer = "".join(f"for i{k} in 0..2 {{\n" if k % 2 else "loop max 2 {\n" for k in range(depth - 1))
    src = wf("  let x = q\n" + outer + "loop max 3 {\n" + body + "\n" + "}\n" * depth + "  return x")
    p = compile_source(src, "x.pflow", until="typecheck")
    estimate, actual = unrolled_size(p.workflow.nodes, 10**9), len(unroll(p).workflow.nodes)
    assert actual <= estimate <= 1.5 * actual
    if "break" not in body:
        assert estimate == actual


def test_loops_whose_steps_emit_nothing_are_still_bounded():
    # found by the fuzz test: `x = x` is an alias, so each step emits no node, but 2**40
    # steps still take forever to walk
    src = wf("  let x = q\n" + "loop max 2 {\n" * 40 + "x = x\n" + "}\n" * 40 + "  return x")
    assert "more than the limit" in error(src).message


def test_nested_loops_that_emit_nothing_are_held_to_the_step_limit():
    # found by the fuzz test: seventeen nested `loop max 2 { x = x }` unroll to no node but
    # walk 262,142 loop steps (2 s, 16 s under tracemalloc); the step count is bounded too
    src = wf("  let x = q\n" + "loop max 2 {\n" * 17 + "x = x\n" + "}\n" * 17 + "  return x")
    e = error(src)
    assert "walks about 262,142 loop steps" in e.message and "more than the limit of 200,000" in e.message
    assert e.span.line == 5  # the outermost loop, the one that crosses the limit
    compile_source(wf("  let x = q\n" + "loop max 2 {\n" * 16 + "x = x\n" + "}\n" * 16 + "  return x"), "x.pflow")
