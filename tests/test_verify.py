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
