"""The parser builds the AST during the LALR parse: spans, error order, GC.

Also lowering's fresh names, which resume per base name instead of rescanning.
"""

from __future__ import annotations

import gc

import pytest

from promptc.errors import CompileError
from promptc.frontend import parser as P
from promptc.frontend.lower import lower
from promptc.frontend.parser import parse


def _sp(span):
    return (span.line, span.col, span.end_line, span.end_col)


def test_spans_with_parentheses():
    # A rule's span runs over all of its tokens, parentheses included; a parenthesized
    # expression keeps its own span (a binary `or` / `+` joins its operands' spans).
    src = (
        "workflow w(x: text, y: text) -> bool {\n"
        "  let a = (x) == y\n"
        "  let b = not ((a))\n"
        "  let c = [(x), y].z\n"
        "  return (a) or b\n"
        "}\n"
    )
    wf = parse(src, "f.pflow").items[0]
    assert _sp(wf.span) == (1, 1, 6, 2)
    a, b, c, ret = wf.body
    assert _sp(a.span) == (2, 3, 2, 19) and _sp(a.value.span) == (2, 11, 2, 19)
    assert _sp(a.value.left.span) == (2, 12, 2, 13) and _sp(a.value.right.span) == (2, 18, 2, 19)
    assert _sp(b.value.span) == (3, 11, 3, 20) and _sp(b.value.operand.span) == (3, 17, 3, 18)
    assert _sp(c.value.span) == (4, 11, 4, 21) and _sp(c.value.value.span) == (4, 11, 4, 19)
    assert _sp(c.value.value.items[0].span) == (4, 13, 4, 14)
    assert _sp(ret.span) == (5, 3, 5, 18) and _sp(ret.value.span) == (5, 11, 5, 18)


def test_a_later_syntax_error_wins_over_an_earlier_semantic_one():
    src = "workflow w(x: foo) -> text {\n  return x\n}\n}}"
    with pytest.raises(CompileError) as info:
        parse(src, "f.pflow")
    assert info.value.message.startswith("unexpected '}'") and info.value.span.line == 4


def test_the_first_semantic_error_in_source_order_wins():
    src = "workflow w(x: foo, y: list) -> bar {\n  return x\n}\n"
    with pytest.raises(CompileError) as info:
        parse(src, "f.pflow")
    assert info.value.message.startswith("unknown type 'foo'") and _sp(info.value.span)[:2] == (1, 15)
    assert info.value.source == src
    # the parser is fine afterwards (no error left over from the failed parse)
    assert parse("workflow w() -> text { return 1 }").items[0].name == "w"


def test_gc_is_paused_only_during_the_parse():
    assert gc.isenabled()
    parse("workflow w() -> text { return 1 }")
    assert gc.isenabled()
    with pytest.raises(CompileError):
        parse("workflow w() -> text { return (1 }")
    assert gc.isenabled()
    gc.disable()
    try:
        parse("workflow w() -> text { return 1 }")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_fresh_names_for_a_reassigned_variable():
    body = "".join("  x = strip(x)\n" for _ in range(3))
    src = (
        "use std.text { strip }\nworkflow w(x: text) -> text {\n" + body
        + "  loop max 2 { x = strip(x) }\n  loop max 2 { x = strip(x) }\n  return x\n}\n"
    )
    wf = lower(parse(src, "f.pflow")).workflow
    names = [n.name for n in wf.nodes]
    assert names == ["x", "x.1", "x.2", "x.3", "loop.step", "loop.step.1"]
    first, second = wf.nodes[4].loop, wf.nodes[5].loop
    assert (first.label, second.label) == ("step", "step.1")
    assert first.carried == (("x", "x.3", "x.4"),) and first.results == (("x", "x.6"),)
    assert second.carried == (("x", "x.6", "x.7"),) and wf.output == "x.9"


# ---- the fast LALR loop (parse_lalr) agrees with lark's own --------------------------------


def _corpus() -> list[str]:
    import random
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [p.read_text(encoding="utf-8") for p in sorted(root.glob("examples/*/*.pflow"))]
    sources += [p.read_text(encoding="utf-8") for p in sorted(root.glob("stdlib/*.pflow"))]
    rng = random.Random(0)
    pieces = ["{", "}", "(", ")", "\n", ";", "let", "x", "=", "if", "else", '"s"', "1", "and", "+", ".", ",",
              "loop", "max", "break", "#", '"""', "enum[", "->", "1.5e3"]
    mutated = []
    for src in sources:
        for _ in range(40):
            s = src
            for _ in range(rng.randint(1, 3)):
                a = rng.randrange(len(s) + 1)
                if rng.random() < 0.4:
                    s = s[:a] + s[a + rng.randint(1, 8):]
                else:
                    s = s[:a] + " " + rng.choice(pieces) + " " + s[a:]
            mutated.append(s)
    return sources + mutated


def test_the_fast_loop_builds_what_lark_builds_and_refuses_what_lark_refuses():
    from lark.exceptions import UnexpectedInput

    from promptc.frontend.parse_actions import Actions
    from promptc.frontend.parse_grammar import Separators, build
    from promptc.frontend.parse_lalr import Driver, Refused

    actions, postlex = Actions(), Separators()
    lark = build(actions.callbacks(), actions.names(), postlex)
    driver = Driver(lark)

    def run(parse, refused, src):
        actions.state.file, actions.state.error = "f.pflow", None
        postlex.start(src)
        try:
            return repr(parse(src)), repr(actions.state.error)
        except refused:
            return "refused", None

    accepted = refused = 0
    for src in _corpus():
        fast = run(driver.run, Refused, src)
        assert fast == run(lark.parse, UnexpectedInput, src), src
        accepted += fast[0] != "refused"
        refused += fast[0] == "refused"
    assert accepted > 50 and refused > 50  # both paths were exercised


def test_without_the_fast_loop_lark_alone_parses_the_same(monkeypatch):
    # a lark whose tables the fast loop cannot read leaves the driver unset: slower, same AST
    src = _corpus()[0]
    fast = parse(src, "f.pflow")
    monkeypatch.setattr(P._parser(), "driver", None)
    assert parse(src, "f.pflow") == fast
    with pytest.raises(CompileError) as info:
        parse("workflow w() -> text { return (1 }", "f.pflow")
    assert info.value.message.startswith("unexpected '}'")


def test_the_parser_modules_import_downward_with_public_names():
    # issue 18: the parser split by job, without private cross-imports or a cycle (imports
    # inside functions included)
    import ast as pyast
    from pathlib import Path

    folder = Path(P.__file__).parent
    mods = {p.stem: p for p in [folder / "parser.py", *sorted(folder.glob("parse_*.py"))]}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.ImportFrom) and (node.module or "").startswith("promptc.frontend."):
                target = node.module.rsplit(".", 1)[1]
                if target in mods:
                    edges[m].add(target)
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{m} imports private {private} from {target}"
            elif isinstance(node, pyast.Import):
                assert not any(a.name.startswith("promptc.frontend.parse") for a in node.names)
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, f"import cycle: {' -> '.join(path + (m,))}"
        if m not in done:
            for t in edges[m]:
                visit(t, path + (m,))
            done.add(m)

    for m in mods:
        visit(m, ())
    assert edges["parse_values"] == set()  # the bottom
    assert "parser" not in set().union(*edges.values())  # the top
