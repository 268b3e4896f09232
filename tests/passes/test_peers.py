from promptc.passes.peers import peers
from .bound import resolve
from promptc.types import TEXT

from promptc.build import ProgramBuilder

from .programs import trec


def test_trec_params_are_peers():
    p = peers(resolve(trec()))
    got = {x.name: x.peers for x in p.params}
    assert got == {
        "instruction": ("answer_format", "shots"),
        "answer_format": ("instruction", "shots"),
        "shots": ("answer_format", "instruction"),
    }


def two_llms(fixed_b=False):
    b = ProgramBuilder()
    b.model("task")
    b.param("a", trainable=True)
    b.param("b", trainable=not fixed_b)
    b.param("c", trainable=True)
    b.param("z", trainable=True)  # used by no llm
    b.llm("f", [("x", TEXT)], system="{a} {b}", user="{x}")
    b.llm("g", [("x", TEXT)], system="{b} {c}", user="{x}")
    w = b.workflow()
    q = w.input("q")
    w.ret(w.llm("g", w.llm("f", q)))
    return resolve(b.build())


def test_union_over_llms_sorted():
    got = {x.name: x.peers for x in peers(two_llms()).params}
    assert got == {"a": ("b",), "b": ("a", "c"), "c": ("b",), "z": ()}


def test_only_trainable_params_are_peers():
    got = {x.name: x.peers for x in peers(two_llms(fixed_b=True)).params}
    assert got == {"a": (), "b": (), "c": (), "z": ()}


def test_llms_no_node_calls_make_no_peers_and_pass_is_idempotent():
    p = two_llms()

    # keep only the call of f: g is defined but never called
    from attrs import evolve

    p2 = evolve(p, workflow=evolve(p.workflow, nodes=p.nodes[:2], output=p.nodes[1].name))
    got = {x.name: x.peers for x in peers(p2).params}
    assert got["c"] == () and got["b"] == ("a",)
    once = peers(p)
    assert peers(once).params == once.params
