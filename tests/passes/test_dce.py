from promptc.passes.dce import dce
from .bound import resolve
from .bound import typecheck
from promptc.passes.unroll import unroll
from promptc.types import INT, TEXT

from promptc.build import ProgramBuilder

from .programs import trec
from .test_unroll import agent


def test_drops_dead_values_and_dead_llm_calls_keeps_inputs_and_params():
    b = ProgramBuilder()
    b.model("task")
    b.param("instr", trainable=True)
    b.function("strip", params=[("s", TEXT)], returns=TEXT)
    b.llm("f", [("x", TEXT)], system="{instr}", user="{x}")
    w = b.workflow("wf", [("q", TEXT), ("unused", TEXT)], TEXT)
    q = w.input("q")
    w.input("unused")
    dead_llm = w.llm("f", q, name="dead_llm")
    w.call("strip", dead_llm, name="dead_strip")
    w.const(3, name="dead_const")
    live = w.call("strip", q, name="live")
    w.ret(live)
    p = dce(b.build())
    assert [n.name for n in p.nodes] == ["q", "unused", "live"]
    assert [x.name for x in p.params] == ["instr"] and p.passes == ("dce",)


def test_keeps_guards_of_live_nodes():
    p = dce(unroll(typecheck(resolve(agent(3).build()))))
    names = {n.name for n in p.nodes}
    assert {"alive@act#0", "alive@act#1", "alive@act#2", "done@act#0", "done@act#1"} <= names
    # the break condition of the last step guards nothing: dead
    assert "done@act#2" not in names and "lim@act#2" not in names


def test_unused_loop_index_consts_are_dropped():
    from .test_unroll import for_loop

    p = dce(unroll(typecheck(resolve(for_loop(2).build()))))
    assert not any(n.name.startswith("hop.i") for n in p.nodes)


def test_keeps_a_live_loop_before_unrolling():
    b = ProgramBuilder()
    w = b.workflow("wf", [("n", INT)], INT)
    n = w.input("n")
    k = w.const(1, name="k")
    w.const(2, name="dead")
    lp = w.loop("l", "for", 2, carried={"n": n})
    lp.update("n", lp.prim("add", lp.ph("n"), k, name="m"))
    w.ret(lp.end()["n"])
    p = dce(b.build())
    assert [x.name for x in p.nodes] == ["n", "k", "loop_l"]


def test_trec_has_nothing_dead():
    p = typecheck(resolve(trec()))
    assert dce(p).nodes == p.nodes
