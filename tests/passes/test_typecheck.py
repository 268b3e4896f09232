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


def test_loop_index_is_int():
    def build(w):
        q = w.input("q")
        lp = w.loop("hop", "for", 2, carried={"q": q}, index=True)
        lp.call("f", lp.i, name="bad")
        lp.update("q", lp.ph("q"))
        return lp.end()["q"]

    assert error(build).message == "argument 1 of 'f' expects text, got int"
