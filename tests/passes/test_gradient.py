import pytest
from attrs import evolve

from promptc.ir import GradNode, TimeIndex
from promptc.passes import gradient as gradient_mod
from promptc.passes.gradient import EMIT, gradient
from promptc.compiler import run_passes
from promptc.types import TEXT

from promptc.build import ProgramBuilder

from .programs import trec


def test_trec_gradient_nodes_from_the_loss_in_reverse_order():
    p = run_passes(trec())
    span = {n.name: n.span for n in p.nodes}
    first_word, strip = p.function("first_word"), p.function("strip")
    assert p.backward == (
        GradNode("loss", "loss", "out", span=span["out"]),
        GradNode("out.grad", "sum", "out", ("loss",), span=span["out"]),
        GradNode("out.back", "grad", "out", ("out.grad",), "call", ("s",), span=span["out"],
                 function="first_word", doc=first_word.doc),
        GradNode("s.grad", "sum", "s", ("out.back",), span=span["s"]),
        GradNode("s.back", "grad", "s", ("s.grad",), "call", ("raw",), span=span["s"], function="strip", doc=strip.doc),
        GradNode("raw.grad", "sum", "raw", ("s.back",), span=span["raw"]),
        GradNode("raw.back", "grad", "raw", ("raw.grad",), "llm", ("instruction", "answer_format", "shots"),
                 span=span["raw"], llm="classify"),
    )
    assert first_word.doc and strip.doc  # the docstrings travel as fields, not packed into a note
    assert p.passes[-1] == "gradient"


def test_a_value_with_several_consumers_sums_their_feedback_in_run_order():
    b = trained()
    b.function("concat", params=[("a", TEXT), ("b", TEXT)], returns=TEXT, doc="Joins.")
    w = b.workflow()
    mid = w.llm("g", w.input("q"), name="mid")
    left = w.call("concat", mid, mid, name="left")
    right = w.llm("g", mid, name="right")
    w.ret(w.call("concat", left, right, name="both"))
    p = run_passes(b.build())
    by = {g.name: g for g in p.backward}
    assert by["mid.grad"].op == "sum" and by["mid.grad"].args == ("right.back", "left.back")
    assert by["left.back"].feeds == ("mid",)  # the same value twice is fed once
    assert by["right.back"].feeds == ("t", "mid")
    order = [g.name for g in p.backward]
    assert order.index("mid.grad") > max(order.index("left.back"), order.index("right.back"))


def test_nothing_to_train_gives_an_empty_backward_program():
    p = run_passes(trec())
    frozen_params = tuple(evolve(x, trainable=False) for x in p.params)
    assert gradient(evolve(p, params=frozen_params)).backward == ()


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
    p = run_passes(b.build())
    rules = {g.node: g for g in p.backward if g.op == "grad"}
    assert [g.node for g in p.backward if g.op == "grad"] == ["first", "items", "both", "mid"]
    assert not any(g.node == "pre" for g in p.backward)
    assert rules["mid"].feeds == ("t",)  # its argument `pre` cannot reach a param
    assert rules["both"].feeds == ("mid",)
    assert rules["items"].rule == "list" and rules["items"].feeds == ("both",)
    assert rules["both"].function == "concat" and rules["both"].doc == p.function("concat").doc
    assert "Concatenates" in rules["both"].doc  # resolve binds the real docstring


def trained(llm: str = "g") -> ProgramBuilder:
    """A builder with one trainable prompt `t`, used by the `llm` named `llm`."""
    b = ProgramBuilder()
    b.model("task")
    b.param("t", trainable=True)
    b.llm(llm, [("x", TEXT)], system="{t}", user="{x}")
    return b


def test_a_select_routed_only_by_a_trained_condition_feeds_nothing():
    b = trained()
    w = b.workflow()
    q = w.input("q")
    cond = w.prim("eq", w.llm("g", q, name="judge"), w.const("yes", name="yes"), name="c")
    w.ret(w.add_node("select", (cond, q, w.const("no", name="no")), "pick", name="pick"))
    p = run_passes(b.build())
    assert p.backward == ()  # feedback does not flow into a condition: nothing to learn


def test_llm_rule_feeds_upstream_values_that_require_gradients():
    b = ProgramBuilder()
    b.model("task")
    b.param("a", trainable=True)
    b.param("b", trainable=True)
    b.llm("f", [("x", TEXT)], system="{a}", user="{x}")
    b.llm("g", [("x", TEXT)], system="{b}", user="{x}")
    w = b.workflow()
    w.ret(w.llm("g", w.llm("f", w.input("q"), name="one"), name="two"))
    p = run_passes(b.build())
    grads = [(g.node, g.feeds) for g in p.backward if g.op == "grad"]
    assert grads == [("two", ("b", "one")), ("one", ("a",))]


def test_loop_steps_keep_their_time_index():
    b = trained("f")
    w = b.workflow()
    lp = w.loop("act", "max", 3, carried={"q": w.input("q")})
    x = lp.llm("f", lp.ph("q"), name="x")
    lp.update("q", x)
    lp.brk(lp.prim("eq", x, lp.const("done", name="d"), name="stop"))
    w.ret(lp.end()["q"])
    p = run_passes(b.build())
    llm_rules = [g for g in p.backward if g.rule == "llm"]
    assert [g.time for g in llm_rules] == [TimeIndex("act", 2), TimeIndex("act", 1), TimeIndex("act", 0)]
    assert llm_rules[0].feeds == ("t", "q.sel@act#1")
    assert [g.time for g in p.backward if g.op == "sum" and g.node.startswith("x@")] == [
        TimeIndex("act", 2), TimeIndex("act", 1), TimeIndex("act", 0)
    ]
    sel = [g for g in p.backward if g.rule == "select"]
    assert sel and all(not g.feeds[0].startswith("alive") for g in sel)
    assert all(g.cond.startswith("alive") and g.variable == "" for g in sel)
    assert not any(g.node.startswith("alive") for g in p.backward)  # guards have no rule


def test_rule_table_covers_every_straight_line_kind():
    from promptc.ir import OPS

    assert set(EMIT) == set(OPS) - {"loop"}


def test_adding_a_kind_is_a_table_entry(monkeypatch):
    p = run_passes(trec(), until="peers")

    def emit(node, cx):
        return GradNode(node.name + ".back", "grad", node.name, (node.name + ".grad",), "custom", cx.upstream(node.args))

    monkeypatch.setitem(gradient_mod.EMIT, "call", emit)
    assert {g.rule for g in gradient(p).backward if g.op == "grad"} == {"custom", "llm"}


def test_loops_must_be_unrolled_first():
    b = ProgramBuilder()
    w = b.workflow()
    lp = w.loop("l", "for", 1, carried={"q": w.input("q")})
    lp.update("q", lp.ph("q"))
    w.ret(lp.end()["q"])
    with pytest.raises(ValueError, match="unroll loops first"):
        gradient(b.build())
