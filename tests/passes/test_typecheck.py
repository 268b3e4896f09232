import pytest

from promptc.errors import CompileError
from .bound import resolve
from promptc.passes.typecheck import const_type

from .bound import typecheck
from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, enum, list_of, record

from promptc.build import ProgramBuilder

from .programs import trec

LABELS = enum("ABBR", "HUM")


def types_of(p):
    return {n.name: n.type for n in p.nodes}


def test_trec_types():
    p = typecheck(resolve(trec()))
    assert types_of(p) == {"question": TEXT, "raw": TEXT, "s": TEXT, "out": TEXT}
    assert p.passes == ("resolve", "typecheck")


def test_const_types():
    assert const_type(True) == BOOL and const_type(3) == INT and const_type(2.5) == FLOAT
    assert const_type("a") == TEXT and const_type(None) == JSON
    assert const_type([1, 2.0]) == list_of(FLOAT)
    assert const_type([1, "a"]) == list_of(JSON)
    assert const_type([]) == list_of(JSON)
    assert const_type({"a": 1}) == record(a=INT)


def _prog(build, inputs=(("q", TEXT),), returns=JSON, llm_returns=TEXT, fn_params=(("s", TEXT),), fn_returns=TEXT):
    b = ProgramBuilder()
    b.model("task")
    b.function("f", params=fn_params, returns=fn_returns)
    b.llm("classify", [("question", TEXT)], llm_returns, user="{question}")
    w = b.workflow("wf", inputs, returns)
    w.ret(build(w))
    return b.build()


def check(build, **kw):
    return typecheck(_prog(build, **kw))


def error(build, **kw):
    with pytest.raises(CompileError) as e:
        typecheck(_prog(build, **kw))
    return e.value


def test_call_argument_type_error_is_located():
    build = lambda w: w.call("f", w.const(3, name="three"), name="bad")
    e = error(build)
    assert e.message == "argument 1 of 'f' expects text, got int"
    assert e.span == _prog(build).node("bad").span


def test_llm_argument_type_error():
    e = error(lambda w: w.llm("classify", w.const(3)))
    assert e.message == "argument 1 of 'classify' expects text, got int"


def test_arity():
    assert "takes 1 argument(s), got 2" in error(lambda w: w.call("f", w.input("q"), w.input("q", name="q2"))).message
    assert "takes 1 argument(s), got 0" in error(lambda w: w.llm("classify")).message


def test_json_is_dynamic():
    p = check(lambda w: w.call("f", w.call("f", w.input("q"))), fn_params=(("x", JSON),), fn_returns=JSON)
    assert [n.type for n in p.nodes] == [TEXT, JSON, JSON]
    # a json value flows into a text parameter
    check(lambda w: w.call("f", w.index(w.input("q"), 0)), inputs=(("q", JSON),))


def test_enum_is_text_but_not_back():
    check(lambda w: w.call("f", w.llm("classify", w.input("q"))), llm_returns=LABELS)
    e = error(lambda w: w.call("f", w.input("q")), returns=LABELS)
    assert e.message == "workflow 'wf' returns enum[ABBR, HUM], but the value returned is text"
    p = check(lambda w: w.llm("classify", w.input("q")), llm_returns=LABELS, returns=LABELS)
    assert p.nodes[-1].type == LABELS


def test_field_and_index():
    rec = record(answer=TEXT, score=FLOAT)
    p = check(lambda w: w.field(w.llm("classify", w.input("q")), "score"), llm_returns=rec)
    assert p.nodes[-1].type == FLOAT
    e = error(lambda w: w.field(w.llm("classify", w.input("q")), "nope"), llm_returns=rec)
    assert e.message == "record {answer: text, score: float} has no field 'nope'"
    assert "cannot take field 'x' of a text value" in error(lambda w: w.field(w.input("q"), "x")).message
    p = check(lambda w: w.index(w.input("q"), 1), inputs=(("q", list_of(INT)),))
    assert p.nodes[-1].type == INT
    assert check(lambda w: w.field(w.input("q"), "a"), inputs=(("q", JSON),)).nodes[-1].type == JSON
    assert "cannot index a text value" in error(lambda w: w.index(w.input("q"), 0)).message


def test_list_literal():
    p = check(lambda w: w.list(w.input("q"), w.llm("classify", w.input("q", name="q2")), ), llm_returns=LABELS)
    assert p.nodes[-1].type == list_of(TEXT)
    p = check(lambda w: w.list(w.input("q"), w.const(1)))
    assert p.nodes[-1].type == list_of(JSON)


@pytest.mark.parametrize(
    "op, a, b, want",
    [
        ("eq", 1, "x", BOOL),
        ("lt", 1, 2.5, BOOL),
        ("lt", "a", "b", BOOL),
        ("and", True, False, BOOL),
        ("add", "a", "b", TEXT),
        ("add", 1, 2, INT),
        ("add", 1, 2.0, FLOAT),
        ("add", ["a"], ["b"], list_of(TEXT)),
    ],
)
def test_prims(op, a, b, want):
    p = check(lambda w: w.prim(op, w.const(a), w.const(b)))
    assert p.nodes[-1].type == want


@pytest.mark.parametrize(
    "op, a, b, message",
    [
        ("lt", 1, "x", "operator '<' compares two numbers or two texts, got int and text"),
        ("and", 1, True, "operator 'and' expects bool, got int"),
        ("add", 1, "x", "cannot add int and text"),
    ],
)
def test_prim_errors(op, a, b, message):
    assert error(lambda w: w.prim(op, w.const(a), w.const(b))).message == message


def test_not():
    assert check(lambda w: w.prim("not", w.const(True))).nodes[-1].type == BOOL
    assert "operator 'not' takes 1 operand(s), got 2" in error(lambda w: w.prim("not", w.const(True), w.const(False))).message


def _agent(w, brk_type_text=False, update_int=False):
    q = w.input("q")
    lp = w.loop("step", "max", 3, carried={"q": q}, index=True)
    x = lp.llm("classify", lp.ph("q"), name="x")
    if update_int:
        x = lp.const(1, name="one")
    done = lp.prim("eq", x, lp.const("FINISH"), name="done") if not brk_type_text else x
    lp.update("q", x)
    lp.brk(done)
    return lp.end()["q"]


def test_loop_bodies_are_typed():
    p = check(_agent, returns=TEXT)
    body = {n.name: n.type for n in p.nodes[-1].loop.body}
    assert body["x"] == TEXT and body["done"] == BOOL


def test_break_condition_must_be_bool():
    e = error(lambda w: _agent(w, brk_type_text=True))
    assert e.message == "`break if` needs a bool condition, got text"


def test_loop_update_must_fit_variable():
    e = error(lambda w: _agent(w, update_int=True))
    assert e.message == "loop variable 'q' is text, but the loop assigns it int"


def _with_loop_spans(program, **spans):
    """`program` whose loop node records the source statements of its break and updates."""
    from attrs import evolve

    from promptc.errors import Span

    def at(line):
        return Span("f.pflow", line, 3, line, 9)

    wf = program.workflow
    nodes = tuple(
        evolve(n, loop=evolve(n.loop, brk_span=at(spans["brk"]) if "brk" in spans else None,
                              update_spans=tuple((v, at(line)) for v, line in spans.get("updates", {}).items())))
        if n.loop is not None else n
        for n in wf.nodes
    )
    return evolve(program, workflow=evolve(wf, nodes=nodes))


def test_loop_errors_point_at_the_statements_the_loop_records():
    p = _with_loop_spans(_prog(lambda w: _agent(w, brk_type_text=True)), brk=7)
    with pytest.raises(CompileError) as e:
        typecheck(p)
    assert e.value.message == "`break if` needs a bool condition, got text" and e.value.span.line == 7
    p = _with_loop_spans(_prog(lambda w: _agent(w, update_int=True)), updates={"q": 5})
    with pytest.raises(CompileError) as e:
        typecheck(p)
    assert e.value.message == "loop variable 'q' is text, but the loop assigns it int" and e.value.span.line == 5


def test_without_recorded_statements_loop_errors_fall_back_to_the_value():
    p = _prog(lambda w: _agent(w, update_int=True))
    with pytest.raises(CompileError) as e:
        typecheck(p)
    body = p.workflow.nodes[-1].loop.body
    assert e.value.span == next(n.span for n in body if n.name == "one")


@pytest.mark.parametrize("guard_op", ["not", "guard"])
def test_a_branch_condition_must_be_bool_not_json(guard_op):
    # `if c` lowers to `if.else = not(c)` (or `guard(g, c)` inside another branch): c is
    # checked there, so an `if` whose branches hold nothing is checked too
    def build(w):
        j = w.call("f", w.input("q"), name="j")
        if guard_op == "not":
            w.prim("not", j, name="if.else")
        else:
            w.add_node("guard", (w.input("g"), j), name="wf.if.else.2")  # as inlined from a workflow `wf`
        return j

    kw = dict(inputs=(("q", TEXT), ("g", BOOL)))
    e = error(build, fn_returns=JSON, **kw)
    assert e.message == "the condition of an `if` must be bool, got json (compare it, e.g. `if x == true`)"
    assert e.span == _prog(build, fn_returns=JSON, **kw).node("if.else" if guard_op == "not" else "wf.if.else.2").span
    check(build, fn_returns=BOOL, **kw)  # a bool condition is fine
    # elsewhere, `not` of a json value is dynamic, as before
    assert check(lambda w: w.prim("not", w.call("f", w.input("q")), name="n"), fn_returns=JSON).nodes[-1].type == BOOL


def test_loop_index_is_int():
    def build(w):
        q = w.input("q")
        lp = w.loop("hop", "for", 2, carried={"q": q}, index=True)
        lp.call("f", lp.i, name="bad")
        lp.update("q", lp.ph("q"))
        return lp.end()["q"]

    assert error(build).message == "argument 1 of 'f' expects text, got int"
