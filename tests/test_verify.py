import pytest
from attrs import evolve

from promptc.ir import GradNode, Node
from promptc.compiler import run_passes
from promptc.passes.pipeline import PASS_NAMES
from promptc.types import TEXT
from promptc.verify import VerifyError, verify

from promptc.build import ProgramBuilder
from tests.passes.programs import trec


def test_pipeline_output_verifies_and_lists_every_pass():
    p = run_passes(trec())
    verify(p)
    assert p.passes == PASS_NAMES == ("inline", "resolve", "typecheck", "unroll", "dce", "peers", "gradient")


def test_until_stops_after_a_pass():
    assert run_passes(trec(), until="typecheck").passes == ("inline", "resolve", "typecheck")
    with pytest.raises(ValueError, match="unknown pass 'nope'"):
        run_passes(trec(), until="nope")


def broken(p, nodes):
    return p.with_nodes(nodes)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda ns: ns + [ns[1]], "'raw' is defined twice"),
        (lambda ns: [ns[0], ns[2], ns[1], ns[3]], "node 's' reads 'raw' before it is defined"),
        (lambda ns: ns[:3] + [evolve(ns[3], op="bogus")], "unknown kind 'bogus'"),
        (lambda ns: ns[:3] + [evolve(ns[3], op="prim", target="pow")], "unknown operator 'pow'"),
        (lambda ns: ns[:3] + [evolve(ns[3], guard="s")], "guarded by 's' of type text, not bool"),
        (lambda ns: ns[:3] + [evolve(ns[3], type=None)], "node 'out' has no type"),
        (lambda ns: ns[:3] + [evolve(ns[3], target="nofn")], "unknown function 'nofn'"),
        (lambda ns: ns[:3] + [evolve(ns[3], op="loop")], "Loop record belongs to loop nodes only"),
    ],
)
def test_broken_ssa_is_caught(mutate, message):
    p = run_passes(trec(), until="typecheck")
    with pytest.raises(VerifyError, match=message):
        verify(p.with_nodes(mutate(list(p.nodes))))


def test_guard_nodes_must_be_bool_after_typecheck():
    p = run_passes(trec(), until="typecheck")
    ns = list(p.nodes)
    g = Node("g", "guard", ("s", "s"), None, type=TEXT)
    with pytest.raises(VerifyError, match="guard 'g' has type text"):
        verify(p.with_nodes(ns + [g]))


def test_loops_left_after_unroll_and_bad_backward():
    b = ProgramBuilder()
    w = b.workflow()
    lp = w.loop("l", "for", 1, carried={"q": w.input("q")})
    lp.update("q", lp.ph("q"))
    w.ret(lp.end()["q"])
    p = b.build()
    verify(p)  # a loop is fine before unrolling
    with pytest.raises(VerifyError, match="left after the unroll pass"):
        verify(evolve(p, passes=("unroll",)))
    t = run_passes(trec())
    with pytest.raises(VerifyError, match="feeds unknown value 'ghost'"):
        verify(evolve(t, backward=t.backward + (GradNode("x", "grad", "raw", (), "llm", ("ghost",)),)))
    with pytest.raises(VerifyError, match="gradient node 'x' for unknown node 'ghost'"):
        verify(evolve(t, backward=(GradNode("x", "grad", "ghost"),)))
    with pytest.raises(VerifyError, match="reads 'raw.grad' before it is defined"):
        verify(evolve(t, backward=t.backward[-1:]))
    with pytest.raises(VerifyError, match="'loss' is defined twice"):
        verify(evolve(t, backward=t.backward[:1] * 2))
    with pytest.raises(VerifyError, match="unknown op 'jvp'"):
        verify(evolve(t, backward=(GradNode("x", "jvp", "raw"),)))


def test_output_must_be_defined():
    p = trec()
    with pytest.raises(VerifyError, match="output 'nowhere' is not defined"):
        verify(evolve(p, workflow=evolve(p.workflow, output="nowhere")))


def test_placeholder_used_outside_its_loop():
    b = ProgramBuilder()
    w = b.workflow()
    lp = w.loop("l", "for", 1, carried={"q": w.input("q")})
    lp.update("q", lp.ph("q"))
    res = lp.end()["q"]
    w.ret(w.list(res, lp.ph("q")))
    with pytest.raises(VerifyError, match="reads 'q.l.ph' before it is defined"):
        verify(b.build())


# -- node shapes (what a crafted .pfc can get wrong while every reference exists) ----------


def _compiled():
    return run_passes(trec())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda ns: [evolve(ns[0], target=["question"])] + ns[1:],
         r"node 'question' \(input\) has a target of type list; the target of input nodes is the name of a workflow argument"),
        (lambda ns: [ns[0], evolve(ns[1], args=())] + ns[2:], r"node 'raw' \(llm\) calls llm 'classify' with 0 argument\(s\); it takes 1"),
        (lambda ns: [ns[0], evolve(ns[1], args=("question", "question"))] + ns[2:], "with 2 argument"),
        (lambda ns: ns[:2] + [Node("s", "index", (), 0)] + ns[3:], r"node 's' \(index\) reads 0 argument\(s\); index nodes read 1$"),
        (lambda ns: ns[:2] + [Node("s", "index", ("raw",), "0")] + ns[3:], "target of type str"),
        (lambda ns: ns[:2] + [Node("s", "index", ("raw",), True)] + ns[3:], "target of type bool"),
        (lambda ns: ns[:2] + [Node("s", "prim", (), "and")] + ns[3:], r"node 's' \(prim\) reads 0 argument\(s\); prim nodes read 1 to 2"),
        (lambda ns: ns[:2] + [Node("s", "prim", ("raw",), "and")] + ns[3:], "applies 'and' to 1 operand"),
        (lambda ns: ns[:2] + [Node("s", "prim", ("raw", "raw"), "len")] + ns[3:], "applies 'len' to 2 operand"),
        (lambda ns: ns[:2] + [Node("s", "prim", ("raw",), ["not"])] + ns[3:], "target of type list"),
        (lambda ns: ns[:2] + [Node("s", "field", ("raw",), 3)] + ns[3:], "target of type int"),
        (lambda ns: ns[:2] + [Node("s", "field", ("raw", "raw"), "f")] + ns[3:], "field nodes read 1"),
        (lambda ns: ns[:2] + [Node("s", "guard", ("raw",))] + ns[3:], "guard nodes read 2"),
        (lambda ns: ns[:2] + [Node("s", "select", ("raw", "raw"))] + ns[3:], "select nodes read 3"),
        (lambda ns: ns[:2] + [Node("s", "list", ("raw",), "x")] + ns[3:], "target of type str"),
        (lambda ns: ns[:2] + [Node("s", "const", ("raw",), 1)] + ns[3:], "const nodes read 0"),
        (lambda ns: ns[:2] + [Node("s", "const", (), b"\x00")] + ns[3:], "type bytes; the target of const nodes is plain data"),
        (lambda ns: ns[:2] + [Node("s", "const", (), [{1: "int key"}])] + ns[3:], "constant that is not plain data"),
        (lambda ns: ns[:2] + [Node("s", "call", ("raw",), ("strip",))] + ns[3:], "target of type tuple"),
        (lambda ns: ns[:2] + [evolve(ns[2], args=("raw", "raw"))] + ns[3:], "calls function 'strip' with 2 argument.s.; it takes at most 1"),
        (lambda ns: [evolve(ns[0], target="nope")] + ns[1:], "reads 'nope', which is not an argument of the workflow"),
    ],
)
def test_every_node_has_the_shape_of_its_kind(change, message):
    p = _compiled()
    with pytest.raises(VerifyError, match=message):
        verify(p.with_nodes(change(list(p.nodes))))


def test_shapes_hold_whatever_passes_a_program_claims():
    p = evolve(_compiled(), passes=())  # a crafted .pfc can claim no pass at all
    verify(p)
    ns = list(p.nodes)
    with pytest.raises(VerifyError, match="index nodes read 1"):
        verify(p.with_nodes(ns[:2] + [Node("s", "index", (), 0)] + ns[3:]))
    with pytest.raises(VerifyError, match="calls llm 'classify' with 0"):
        verify(p.with_nodes([ns[0], evolve(ns[1], args=())] + ns[2:]))
    # what only the type checker knows is checked only after it
    verify(p.with_nodes([evolve(ns[0], target="nope")] + ns[1:]))


def test_constants_may_be_any_plain_data():
    p = _compiled()
    ns = list(p.nodes)
    for value in (None, True, 1.5, "x", [1, [2.0, None]], (1, ("a",)), {"a": {"b": [True]}}):
        verify(p.with_nodes(ns + [Node("c", "const", (), value, type=TEXT)]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g, bw: bw[:1] + (evolve(bw[0], name="x", args=("loss",)),) + bw[1:], "'x' reads 1 value.s.; loss nodes read 0"),
        (lambda g, bw: bw[:1] + (GradNode("x", "sum", "raw", ()),) + bw[1:], "'x' reads 0 value.s.; sum nodes read 1 or more"),
        (lambda g, bw: bw + (GradNode("x", "grad", "raw", ("loss", "loss"), "llm", llm="classify"),), "grad nodes read 1$"),
        (lambda g, bw: bw + (GradNode("x", "grad", "raw", ("loss",), "call"),), "applies the rule of 'call' to a llm node"),
        (lambda g, bw: bw + (GradNode("x", "grad", "raw", ("loss",), "llm", llm="nobody"),), "names unknown llm 'nobody'"),
        (lambda g, bw: bw + (GradNode("x", "grad", "raw", ("loss",), "llm", llm="classify", cond="raw"),), "only the rule of a select"),
    ],
)
def test_gradient_nodes_have_the_shape_of_their_op(change, message):
    p = _compiled()
    assert p.backward
    with pytest.raises(VerifyError, match=message):
        verify(evolve(p, backward=change(p, p.backward)))


def test_a_select_rule_needs_its_condition_and_branches():
    b = ProgramBuilder()
    b.model("task")
    b.param("p", trainable=True, text="x")
    b.llm("f", [("q", TEXT)], TEXT, system="{p}", user="{q}")
    w = b.workflow("w", [("q", TEXT)], TEXT)
    q = w.input("q")
    a = w.llm("f", q, name="a")
    c = w.prim("eq", q, a, name="c")
    w.ret(w.add_node("select", (c, a, q), name="sel"))
    p = run_passes(b.build())
    (g,) = [g for g in p.backward if g.rule == "select"]
    verify(p)
    for bad in (evolve(g, branches=(g.branches[0],)), evolve(g, cond="ghost"), evolve(g, branches=(g.branches[0], "ghost"))):
        with pytest.raises(VerifyError, match="needs its condition and two branches"):
            verify(evolve(p, backward=tuple(bad if x is g else x for x in p.backward)))


def test_a_loop_has_a_known_kind_and_a_bound():
    b = ProgramBuilder()
    w = b.workflow()
    lp = w.loop("l", "for", 1, carried={"q": w.input("q")})
    lp.update("q", lp.ph("q"))
    w.ret(lp.end()["q"])
    p = b.build()
    verify(p)
    (n,) = [n for n in p.nodes if n.op == "loop"]
    for loop in (evolve(n.loop, kind="while"), evolve(n.loop, bound=-1)):
        with pytest.raises(VerifyError, match=r"\(loop\) is a loop of kind"):
            verify(p.with_nodes(tuple(evolve(n, loop=loop) if m is n else m for m in p.nodes)))
