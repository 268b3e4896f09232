import pytest

from promptc.ir import GradRule, TimeIndex
from promptc.passes import gradient as gradient_mod
from promptc.passes.gradient import RULES, gradient
from promptc.passes.pipeline import run_pipeline
from promptc.types import TEXT

from promptc.build import ProgramBuilder

from .programs import trec


def test_trec_one_rule_per_node_in_reverse_order():
    p = run_pipeline(trec())
    assert p.backward == (
        GradRule("out", "call", ("s",), None, "first_word: " + p.function("first_word").doc),
        GradRule("s", "call", ("raw",), None, "strip: " + p.function("strip").doc),
        GradRule("raw", "llm", ("instruction", "answer_format", "shots"), None, "classify"),
    )
    assert p.passes[-1] == "gradient"


def test_no_rule_where_no_trainable_param_is_upstream():
    b = ProgramBuilder()
    b.model("task")
    b.param("fixed")
    b.param("t", trainable=True)
    b.function("concat", params=[("a", TEXT), ("b", TEXT)], returns=TEXT, doc="Joins.")
    b.llm("f", [("x", TEXT)], system="{fixed}", user="{x}")
    b.llm("g", [("x", TEXT)], system="{t}", user="{x}")
    w = b.workflow()
    q = w.input("q")
    pre = w.llm("f", q, name="pre")  # no trainable param: no rule
    mid = w.llm("g", pre, name="mid")
    both = w.call("concat", pre, mid, name="both")
    items = w.list(both, pre, name="items")
    w.ret(w.index(items, 0, name="first"))
    p = run_pipeline(b.build())
    rules = {g.node: g for g in p.backward}
    assert [g.node for g in p.backward] == ["first", "items", "both", "mid"]
    assert rules["mid"].feeds == ("t",)  # its argument `pre` cannot reach a param
    assert rules["both"].feeds == ("mid",)
    assert rules["items"].rule == "passthrough" and rules["items"].feeds == ("both",)
    assert rules["both"].note == "concat: " + p.function("concat").doc  # resolve binds the real docstring
    assert "Concatenates" in rules["both"].note


def test_llm_rule_feeds_upstream_values_that_require_gradients():
    b = ProgramBuilder()
    b.model("task")
    b.param("a", trainable=True)
    b.param("b", trainable=True)
    b.llm("f", [("x", TEXT)], system="{a}", user="{x}")
    b.llm("g", [("x", TEXT)], system="{b}", user="{x}")
    w = b.workflow()
    w.ret(w.llm("g", w.llm("f", w.input("q"), name="one"), name="two"))
    p = run_pipeline(b.build())
    assert [(g.node, g.feeds) for g in p.backward] == [("two", ("b", "one")), ("one", ("a",))]


def test_loop_steps_keep_their_time_index():
    b = ProgramBuilder()
    b.model("task")
    b.param("t", trainable=True)
    b.llm("f", [("x", TEXT)], system="{t}", user="{x}")
    w = b.workflow()
    lp = w.loop("act", "max", 3, carried={"q": w.input("q")})
    x = lp.llm("f", lp.ph("q"), name="x")
    lp.update("q", x)
    lp.brk(lp.prim("eq", x, lp.const("done", name="d"), name="stop"))
    w.ret(lp.end()["q"])
    p = run_pipeline(b.build())
    llm_rules = [g for g in p.backward if g.rule == "llm"]
    assert [g.time for g in llm_rules] == [TimeIndex("act", 2), TimeIndex("act", 1), TimeIndex("act", 0)]
    assert llm_rules[0].feeds == ("t", "q.sel@act#1")
    sel = [g for g in p.backward if g.rule == "select"]
    assert sel and all(not g.feeds[0].startswith("alive") for g in sel)
    assert not any(g.node.startswith("alive") for g in p.backward)  # guards have no rule


def test_rule_table_covers_every_straight_line_kind():
    from promptc.ir import OPS

    assert set(RULES) == set(OPS) - {"loop"}


def test_adding_a_kind_is_a_table_entry(monkeypatch):
    p = run_pipeline(trec(), until="peers")
    monkeypatch.setitem(gradient_mod.RULES, "call", lambda n, cx: GradRule(n.name, "custom", cx.upstream(n)))
    assert {g.rule for g in gradient(p).backward} == {"custom", "llm"}


def test_loops_must_be_unrolled_first():
    b = ProgramBuilder()
    w = b.workflow()
    lp = w.loop("l", "for", 1, carried={"q": w.input("q")})
    lp.update("q", lp.ph("q"))
    w.ret(lp.end()["q"])
    with pytest.raises(ValueError, match="unroll loops first"):
        gradient(b.build())
