"""The .pflow parser: AST shapes, spans, separators, strings and templates."""

from __future__ import annotations

import pytest

from promptc.errors import CompileError
from promptc.frontend import ast as A
from promptc.frontend.parser import decode_string, parse
from promptc.template import TemplateError, placeholders, render, scan
from promptc.types import BOOL, INT, JSON, TEXT, Type, enum, list_of


def items(src: str) -> tuple:
    return parse(src, "t.pflow").items


def body(stmts: str) -> tuple:
    (wf,) = items("workflow w(x: text) -> text {\n" + stmts + "\n}")
    return wf.body


def test_declarations():
    src = '''
use std.text { strip, first_word as fw }
use "tools.py" { act }
model a = "openai/gpt-4o"
model b = env("VAR", "local/default")
model c = env("ONLY")
param p: prompt trainable "role" = "hi"
param d: demos(max = 3)
'''
    u1, u2, a, b, c, p, d = items(src)
    assert u1 == A.Use("std.text", u1.names, u1.span) and [n.local for n in u1.names] == ["strip", "fw"]
    assert u1.names[1].attr == "first_word" and u2.module == "tools.py"
    assert (a.default, a.env) == ("openai/gpt-4o", None)
    assert (b.default, b.env) == ("local/default", "VAR")
    assert (c.default, c.env) == ("local/default", "ONLY")
    assert (p.kind, p.trainable, p.role, p.text) == ("prompt", True, "role", "hi")
    assert (d.kind, d.max_demos, d.trainable, d.text) == ("demos", 3, False, "")
    assert p.name_span.line == 7 and p.name_span.col == 7


def test_types():
    (llm,) = items(
        "llm f(a: text, b: list[int], c: {x: bool, y: json}, d: enum[A, \"b c\"]) -> list[{k: text}] via m { user \"{a}\" }"
    )
    types = [a.type for a in llm.params]
    assert types == [TEXT, list_of(INT), Type("record", fields=(("x", BOOL), ("y", JSON))), enum("A", "b c")]
    assert llm.returns == list_of(Type("record", fields=(("k", TEXT),)))


@pytest.mark.parametrize(
    "src, msg",
    [
        ("llm f(a: txt) -> text via m { }", "unknown type 'txt'"),
        ("llm f(a: list) -> text via m { }", "'list' needs its parameters"),
        ("llm f(a: enum[A, A]) -> text via m { }", "duplicate enum label 'A'"),
        ("llm f(a: {x: text, x: int}) -> text via m { }", "duplicate record field 'x'"),
        ("param let: prompt", "'let' is a reserved word"),
        ("param d: demos(max = 0)", "K >= 1"),
        ('param d: demos(max = 2) = "x"', "a demos param has no '= value'"),
        ("use text { strip }", "unknown module 'text'"),
    ],
)
def test_declaration_errors(src, msg):
    with pytest.raises(CompileError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse(src, "t.pflow")


def test_llm_entries_commas_or_newlines():
    one = items('llm f(q: text) -> text via m { system "S {q}", demos d, user "U", assistant "A" }')[0]
    two = items('llm f(q: text) -> text via m {\n  system "S {q}"\n  demos d\n  user "U"\n  assistant "A"\n}')[0]
    kinds = [type(e).__name__ + ":" + getattr(e, "role", "") for e in one.entries]
    assert kinds == ["Message:system", "DemosEntry:", "Message:user", "Message:assistant"]
    assert [e.__class__ for e in two.entries] == [e.__class__ for e in one.entries]
    hole = one.entries[0].placeholders[0]
    assert hole.name == "q" and (hole.span.line, hole.span.col, hole.span.end_col) == (1, 42, 45)


def test_statement_separators_and_continuations():
    stmts = body("let a = x; let b = a +\n  x\n\n  # comment\n  let c = [a,\n b]\n  return f(a,\n   b)")
    assert [type(s).__name__ for s in stmts] == ["Let", "Let", "Let", "Return"]
    assert isinstance(stmts[1].value, A.BinOp) and stmts[1].value.op == "add"
    assert len(stmts[2].value.items) == 2
    # an operator at the start of the next line continues the expression too
    (_, s2) = body("let a = x\n  let b = a\n    + x")
    assert isinstance(s2.value, A.BinOp)


def test_expression_precedence():
    (s,) = body("let v = not a == b and c or d + e . f [0] < g(h)")
    e = s.value
    assert e.op == "or" and e.left.op == "and" and isinstance(e.left.left, A.Not)
    assert e.left.left.operand.op == "eq"
    cmp = e.right
    assert cmp.op == "lt" and cmp.left.op == "add" and isinstance(cmp.left.right, A.Index)
    assert isinstance(cmp.left.right.value, A.Field) and isinstance(cmp.right, A.Call)


def test_literals():
    (s,) = body('let v = [1, -2, 2.5, true, false, "a\\nb", """\n  x\n    y\n  """]')
    assert [i.value for i in s.value.items] == [1, -2, 2.5, True, False, "a\nb", "x\n  y"]


def test_loops_and_train():
    src = """
workflow w(x: text) -> text {
  for i in 0..3 { x = f(x) }
  loop max 4 {
    x = g(x)
    break if x == "done"
  }
  return x
}
train w { metric em; answer label
  teacher t }
"""
    wf, tr = items(src)
    f, l, r = wf.body
    assert isinstance(f, A.For) and f.var == "i" and f.stop.value == 3
    assert isinstance(l, A.LoopMax) and l.bound.value == 4 and isinstance(l.body[-1], A.BreakIf)
    assert [(e.key, e.value) for e in tr.entries] == [("metric", "em"), ("answer", "label"), ("teacher", "t")]


def test_keywords_are_contextual_where_unambiguous():
    # `answer` is a train key and also a fine variable / llm name
    (wf,) = items("workflow w(answer: text) -> text { let demos = answer\n return demos }")
    assert wf.params[0].name == "answer"


def test_decode_string():
    assert decode_string('"a\\tb\\"c\\\\ \\q"') == 'a\tb"c\\ \\q'
    assert decode_string('"""\n    line one\n      two\n    """') == "line one\n  two"


def test_templates():
    assert scan("a {x} {{y}} {z}") == [("x", 2, 5), ("z", 12, 15)]
    assert placeholders("{a}{b}{a}") == ("a", "b")
    assert render("{a} {{literal}} {b}", {"a": 1, "b": "two"}) == "1 {literal} two"
    for bad in ["{", "{ a}", "}", "{a.b}", "{1}"]:
        with pytest.raises(TemplateError):
            scan(bad)


def test_bad_template_is_located():
    with pytest.raises(CompileError) as info:
        parse('llm f(q: text) -> text via m {\n  user "say {\'x\'}"\n}', "t.pflow")
    assert info.value.span.line == 2 and info.value.span.col == 13
