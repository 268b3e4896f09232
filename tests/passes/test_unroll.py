from hypothesis import given, settings
from hypothesis import strategies as st

from promptc.ir import TimeIndex
from .bound import resolve
from .bound import typecheck
from promptc.passes.unroll import unroll
from promptc.types import BOOL, INT, TEXT
from promptc.verify import verify

from promptc.build import ProgramBuilder
from .eval_ir import run


def compiled(b):
    p = unroll(typecheck(resolve(b.build())))
    verify(p)
    return p


def for_loop(bound=2):
    b = ProgramBuilder()
    b.model("task")
    b.function("concat", params=[("a", TEXT), ("b", TEXT)], returns=TEXT)
    w = b.workflow("wf", [("q", TEXT)], TEXT)
    q = w.input("q")
    lp = w.loop("hop", "for", bound, carried={"q": q}, index=True)
    x = lp.call("concat", lp.ph("q"), lp.const("!", name="bang"), name="x")
    lp.update("q", x)
    w.ret(w.call("concat", lp.end()["q"], w.const("?", name="qm"), name="out"))
    return b


def test_for_loop_names_times_and_results():
    p = compiled(for_loop(2))
    names = [n.name for n in p.nodes]
    assert names == ["q", "hop.i@hop#0", "bang@hop#0", "x@hop#0", "hop.i@hop#1", "bang@hop#1", "x@hop#1", "qm", "out"]
    n = {n.name: n for n in p.nodes}
    assert n["x@hop#0"].args == ("q", "bang@hop#0")
    assert n["x@hop#1"].args == ("x@hop#0", "bang@hop#1")
    assert n["out"].args == ("x@hop#1", "qm")  # the loop result is an alias of the last value
    assert n["x@hop#1"].time == TimeIndex("hop", 1) and n["hop.i@hop#1"].target == 1
    assert n["out"].time is None
    assert all(x.op != "loop" for x in p.nodes) and p.passes[-1] == "unroll"
    out, _ = run(p, {"q": "a"}, {"concat": lambda a, b: a + b})
    assert out == "a!!?"


def test_output_that_is_a_loop_result():
    b = ProgramBuilder()
    w = b.workflow("wf", [("n", INT)], INT)
    lp = w.loop("l", "for", 3, carried={"n": w.input("n")})
    lp.update("n", lp.prim("add", lp.ph("n"), lp.const(2, name="two"), name="m"))
    w.ret(lp.end()["n"])
    p = compiled(b)
    assert p.workflow.output == "m@l#2"
    assert run(p, {"n": 1})[0] == 7


def agent(bound=3, limit=5, step=2):
    """n += step until n >= limit, at most `bound` times."""
    b = ProgramBuilder()
    w = b.workflow("wf", [("n", INT)], INT)
    lp = w.loop("act", "max", bound, carried={"n": w.input("n")})
    m = lp.prim("add", lp.ph("n"), lp.const(step, name="k"), name="m")
    lp.update("n", m)
    lp.brk(lp.prim("ge", m, lp.const(limit, name="lim"), name="done"))
    w.ret(lp.end()["n"])
    return b


def test_break_becomes_guards_and_selects():
    p = compiled(agent(3))
    n = {x.name: x for x in p.nodes}
    # step 0 runs unguarded; step 1 is guarded by alive@act#1 = guard(true, done@act#0)
    assert n["m@act#0"].guard is None
    assert n["alive@act#0"].op == "const" and n["alive@act#0"].target is True
    assert n["alive@act#1"].op == "guard" and n["alive@act#1"].args == ("alive@act#0", "done@act#0")
    assert n["alive@act#2"].args == ("alive@act#1", "done@act#1")
    assert n["m@act#1"].guard == "alive@act#1" and n["done@act#2"].guard == "alive@act#2"
    assert n["alive@act#1"].type == BOOL and n["alive@act#1"].guard is None
    sel = n["n.sel@act#1"]
    assert sel.op == "select" and sel.args == ("alive@act#1", "m@act#1", "m@act#0") and sel.type == INT
    assert n["n.sel@act#2"].args == ("alive@act#2", "m@act#2", "n.sel@act#1")
    assert p.workflow.output == "n.sel@act#2"
    out, executed = run(p, {"n": 0})
    assert out == 6
    out, executed = run(p, {"n": 4})  # breaks after step 0
    assert out == 6 and executed["m@act#1"] is False and executed["m@act#2"] is False


def nested(outer, inner, limit):
    """total = sum over outer steps of an inner counter that stops at `limit`."""
    b = ProgramBuilder()
    w = b.workflow("wf", [("n", INT)], INT)
    n = w.input("n")
    o = w.loop("outer", "max", outer, carried={"t": n}, index=True)
    zero = o.const(0, name="zero")
    i = o.loop("inner", "max", inner, carried={"c": zero})
    c2 = i.prim("add", i.ph("c"), o.i, name="c2")  # reads the outer index
    c3 = i.prim("add", c2, i.const(1, name="one"), name="c3")
    i.update("c", c3)
    i.brk(i.prim("ge", c3, i.const(limit, name="lim"), name="full"))
    c = i.end()["c"]
    t2 = o.prim("add", o.ph("t"), c, name="t2")
    o.update("t", t2)
    o.brk(o.prim("ge", t2, o.const(20, name="cap"), name="stop"))
    w.ret(o.end()["t"])
    return b


def test_nested_loops_names_and_times():
    p = compiled(nested(2, 2, 100))
    n = {x.name: x for x in p.nodes}
    assert n["c3@outer#1@inner#1"].time == TimeIndex("outer#1/inner", 1)
    assert n["t2@outer#1"].time == TimeIndex("outer", 1)
    # the inner break chain of a guarded outer step starts from the outer guard
    assert n["alive@outer#1@inner#1"].args == ("alive@outer#1", "full@outer#1@inner#0")
    assert n["c2@outer#1@inner#0"].guard == "alive@outer#1"
    assert n["c2@outer#1@inner#0"].args[1] == "outer.i@outer#1"
    assert len({x.name for x in p.nodes}) == len(p.nodes)


@settings(max_examples=60, deadline=None)
@given(
    outer=st.integers(1, 4), inner=st.integers(1, 4), limit=st.integers(1, 6), n=st.integers(-3, 25),
)
def test_nested_unroll_matches_loop_semantics(outer, inner, limit, n):
    b = nested(outer, inner, limit)
    before = typecheck(resolve(b.build()))
    after = unroll(before)
    verify(after)
    assert run(after, {"n": n})[0] == run(before, {"n": n})[0]


@settings(max_examples=40, deadline=None)
@given(bound=st.integers(1, 6), limit=st.integers(-2, 14), step=st.integers(1, 4), n=st.integers(-5, 10))
def test_break_unroll_matches_loop_semantics(bound, limit, step, n):
    before = typecheck(resolve(agent(bound, limit, step).build()))
    after = unroll(before)
    verify(after)
    assert run(after, {"n": n})[0] == run(before, {"n": n})[0]


def test_unroll_is_deterministic_and_noop_without_loops():
    assert compiled(nested(2, 3, 4)) == compiled(nested(2, 3, 4))
    b = ProgramBuilder()
    w = b.workflow("wf", [("n", INT)], INT)
    w.ret(w.input("n"))
    p = typecheck(b.build())
    assert unroll(p).nodes is p.nodes


def test_name_clash_gets_a_fresh_suffix():
    b = ProgramBuilder()
    w = b.workflow("wf", [("n", INT)], INT)
    n = w.input("n")
    w.const(0, name="m@l#0")  # a user value that looks like an unrolled name
    lp = w.loop("l", "for", 1, carried={"n": n})
    lp.update("n", lp.prim("add", lp.ph("n"), lp.ph("n"), name="m"))
    w.ret(lp.end()["n"])
    p = compiled(b)
    assert [x.name for x in p.nodes] == ["n", "m@l#0", "m@l#0.1"]


FAN = """
workflow w(xs: list[int], t: int) -> int {
  let total = 0
  let picked = [0]
  for x in xs max 4 {
    if x > t {
      total = total + x
      picked = picked + [x]
    } else if x == t {
      total = total + 100
    }
  }
  return total + picked[-1]
}
"""


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.integers(-5, 5), max_size=7), t=st.integers(-3, 3))
def test_fan_out_with_branches_unrolls_to_the_loop_semantics(xs, t):
    from promptc.compiler import compile_source

    before = compile_source(FAN, "w.pflow", until="typecheck")
    after = unroll(before)
    verify(after)
    assert not any(n.op == "loop" for n in after.nodes)
    assert run(after, {"xs": xs, "t": t})[0] == run(before, {"xs": xs, "t": t})[0]
