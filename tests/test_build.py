"""The IR builder (promptc.build): fresh names never collide, renaming, keyword-built nodes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from promptc.build import Builder, Env, Names, ProgramBuilder
from promptc.ir import Node, TimeIndex
from promptc.compiler import run_passes
from promptc.passes.unroll import unroll
from promptc.types import INT, TEXT

_BASES = st.sampled_from(["x", "x.1", "x.2", "t", "t1", "t2", "loop.step", "a@hop#0"])


@settings(max_examples=200, deadline=None)
@given(taken=st.sets(st.one_of(_BASES, st.builds(lambda b, k: f"{b}.{k}", _BASES, st.integers(1, 4)))),
       asks=st.lists(st.one_of(_BASES.map(lambda b: ("fresh", b)), st.just(("temp", "t"))), max_size=30))
def test_fresh_names_never_collide_with_taken_ones_or_each_other(taken, asks):
    names = Names(taken)
    given_out = []
    for how, base in asks:
        name = names.fresh(base) if how == "fresh" else names.temp()
        assert name not in taken and name not in given_out
        if how == "fresh":  # `base` itself, or `base.K`
            assert name == base or (name.startswith(base + ".") and name[len(base) + 1 :].isdigit())
        given_out.append(name)
        assert name in names


def test_fresh_is_base_then_the_first_free_suffix():
    names = Names({"raw", "raw.1", "raw.3"})
    assert [names.fresh("raw") for _ in range(3)] == ["raw.2", "raw.4", "raw.5"]
    assert names.fresh("other") == "other"
    assert Names({"t1", "t2", "t4"}).temp() == "t3"


def test_names_of_a_program_include_loop_placeholders_and_results():
    b = ProgramBuilder()
    b.model("task")
    w = b.workflow("wf", [("n", INT)], INT)
    n = w.input("n")
    lb = w.loop("hop", "for", 2, carried={"n": n}, index=True)
    lb.update("n", lb.prim("add", lb.ph("n"), lb.i, name="m"))
    w.ret(lb.end()["n"])
    names = Names.of(b.build())
    for taken in ("n", "m", "n.hop.ph", "hop.i", "n.after.hop", "loop_hop"):
        assert taken in names
    assert names.fresh("n.hop.ph") == "n.hop.ph.1"


def test_builder_emits_keyword_built_nodes_named_by_hint_name_or_temporary():
    b = Builder(Names({"q"}))
    assert b.emit("input", hint="q", target="q", type=TEXT) == "q.1"
    assert b.emit("const", target=3, type=INT) == "t1"
    assert b.emit("prim", name="fixed", args=("q.1", "t1"), target="add") == "fixed"
    body = b.child()
    assert body.emit("const", hint="fixed", target=0) == "fixed.1"  # a body shares the names
    assert [n.name for n in b.nodes] == ["q.1", "t1", "fixed"] and [n.name for n in body.nodes] == ["fixed.1"]
    assert b.nodes[2] == Node(name="fixed", op="prim", args=("q.1", "t1"), target="add")


def test_env_renames_in_scopes_and_copies_nodes_by_keyword():
    env = Env()
    env["a"] = "a2"
    step = env.child()
    step["b"] = "b@s#0"
    assert (env["a"], env["b"], env["zz"]) == ("a2", "b", "zz")  # the step's renaming stays in the step
    assert step.all(("a", "b", "c")) == ("a2", "b@s#0", "c")
    assert step.child()["b"] == "b@s#0"
    n = Node(name="x", op="prim", args=("a", "b"), target="add", type=INT, guard="b", time=TimeIndex("s", 1))
    copied = step.copy(n)
    assert copied == Node(name="x", op="prim", args=("a2", "b@s#0"), target="add", type=INT, guard="b@s#0",
                          time=TimeIndex("s", 1))
    assert step.copy(n, name="y").name == "y"
    untouched = Node(name="k", op="const", target=1)
    assert step.copy(untouched) is untouched
    assert env.opt(None) is None


def test_unrolled_names_avoid_a_name_the_source_already_uses():
    b = ProgramBuilder()
    b.model("task")
    w = b.workflow("wf", [("n", INT)], INT)
    n = w.input("n")
    w.const(7, name="m@hop#0")  # what the unroller would call step 0's copy of `m`
    lb = w.loop("hop", "for", 2, carried={"n": n})
    lb.update("n", lb.prim("add", lb.ph("n"), lb.ph("n"), name="m"))
    w.ret(lb.end()["n"])
    p = unroll(b.build())
    names = [x.name for x in p.nodes]
    assert len(names) == len(set(names))
    assert "m@hop#0.1" in names and "m@hop#1" in names
    assert run_passes(b.build()).workflow.output == "m@hop#1"
