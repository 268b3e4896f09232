import pytest
from attrs import evolve

from promptc.errors import CompileError
from promptc.ir import Function
from promptc.passes.resolve import placeholders

from .bound import resolve
from promptc.types import INT, JSON, TEXT, list_of

from promptc.build import ProgramBuilder

from .programs import trec

TOOLS = '''
def shout(s: str, times: int = 1) -> str:
    """Uppercases the text."""
    return s.upper() * times

def untyped(x):
    return x

value = 3
'''


@pytest.fixture
def src(tmp_path):
    (tmp_path / "tools.py").write_text(TOOLS)
    return str(tmp_path / "t.pflow")


def tools_program(src, fn="shout", attr=None, module="tools.py"):
    b = ProgramBuilder(src)
    b.model("task")
    b.function(fn, module=module, attr=attr)
    w = b.workflow()
    q = w.input("q")
    w.ret(w.call(fn, q, name="out"))
    return b.build()


def test_binds_user_module_with_doc_and_signature(src):
    p = resolve(tools_program(src))
    fn = p.function("shout")
    assert fn.doc == "Uppercases the text."
    assert fn.params == (("s", TEXT), ("times", INT))
    assert fn.returns == TEXT
    assert p.passes == ("resolve",)


def test_unannotated_function_is_json(src):
    fn = resolve(tools_program(src, "untyped")).function("untyped")
    assert fn.params == (("x", JSON),) and fn.returns == JSON and fn.doc == ""


def test_binds_stdlib():
    p = resolve(trec())
    assert p.function("strip").doc.startswith("Removes leading")
    assert p.function("exact_match").returns.kind == "float"


def test_missing_module_or_function_is_located(src):
    with pytest.raises(CompileError) as e:
        resolve(tools_program(src, "nope"))
    assert "has no function 'nope'" in e.value.message
    assert e.value.span.line == 2  # the Function's span
    with pytest.raises(CompileError, match="cannot find module file 'missing.py'"):
        resolve(tools_program(src, module="missing.py"))
    with pytest.raises(CompileError, match="has no function 'value'"):
        resolve(tools_program(src, "value"))


def test_llm_uses_in_first_use_order_with_demos_before_last_user():
    p = resolve(trec())
    assert p.llm("classify").uses == ("instruction", "answer_format", "shots")


def test_uses_order_follows_templates():
    b = ProgramBuilder()
    b.model("task")
    b.param("a")
    b.param("b")
    b.param("d", kind="demos")
    b.llm("f", [("x", TEXT)], system="{b} then {a} and {b}", user="{x} {a}", demos="d")
    w = b.workflow()
    w.ret(w.llm("f", w.input("q")))
    assert resolve(b.build()).llm("f").uses == ("b", "a", "d")


def _one_llm(system="{x}", demos=None, model="task", kinds=()):
    b = ProgramBuilder()
    b.model("task")
    b.param("p")
    b.param("d", kind="demos")
    b.llm("f", [("x", TEXT)], system=system, user="{x}", demos=demos, model=model)
    w = b.workflow()
    w.ret(w.llm("f", w.input("q")))
    return b.build()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(system="{nope}"), "placeholder '{nope}' in llm 'f' is neither an argument nor a param"),
        (dict(system="{d}"), "placeholder '{d}' names the demos param 'd'; use `demos d` instead"),
        (dict(system="{x.y}"), "placeholder '{x.y}' must be a plain name"),
        (dict(system="oops {"), "bad template"),
        (dict(demos="p"), "'p' is a prompt param, not a demos param"),
        (dict(demos="zz"), "unknown demos param 'zz'"),
        (dict(model="big"), "unknown model 'big' in llm 'f'"),
    ],
)
def test_llm_errors(kw, message):
    with pytest.raises(CompileError) as e:
        resolve(_one_llm(**kw))
    assert message in e.value.message
    assert e.value.span is not None


def test_escaped_braces_are_literal():
    assert placeholders("{{json}} {x} {{") == ["x"]
    resolve(_one_llm(system='Answer as {{"a": 1}} for {x}'))


def test_call_target_must_be_function():
    b = ProgramBuilder()
    b.model("task")
    b.param("instr")
    b.llm("f", [("x", TEXT)], user="{x}")
    w = b.workflow()
    q = w.input("q")
    w.ret(w.call("instr", q))
    with pytest.raises(CompileError) as e:
        resolve(b.build())
    p = b.build()
    assert e.value.message == "'instr' is a param, not a function"
    assert e.value.span == p.nodes[1].span
    bad = p.with_nodes([p.nodes[0], evolve(p.nodes[1], target="f")])
    with pytest.raises(CompileError, match="'f' is an llm, not a function"):
        resolve(bad)
    bad = p.with_nodes([p.nodes[0], evolve(p.nodes[1], target="nope")])
    with pytest.raises(CompileError, match="unknown function 'nope'"):
        resolve(bad)


def test_unknown_value_name():
    p = trec()
    bad = p.with_nodes([p.nodes[0], evolve(p.nodes[1], args=("questoin",)), *p.nodes[2:]])
    with pytest.raises(CompileError, match="unknown name 'questoin'"):
        resolve(bad)


def test_duplicate_declarations():
    b = ProgramBuilder()
    b.model("task")
    b.param("p")
    b.param("p")
    w = b.workflow()
    w.ret(w.input("q"))
    with pytest.raises(CompileError, match="duplicate param 'p'"):
        resolve(b.build())


def test_train_spec_checks():
    p = trec()
    assert resolve(p).train.metric == "exact_match"
    with pytest.raises(CompileError, match="train block names workflow 'other'"):
        resolve(evolve(p, train=evolve(p.train, workflow="other")))
    with pytest.raises(CompileError, match="unknown metric function 'f1'"):
        resolve(evolve(p, train=evolve(p.train, metric="f1")))
    with pytest.raises(CompileError, match="unknown teacher model 'big'"):
        resolve(evolve(p, train=evolve(p.train, teacher="big")))


def test_descends_into_loop_bodies():
    b = ProgramBuilder()
    b.model("task")
    b.function("strip", params=[("s", TEXT)], returns=TEXT)
    w = b.workflow()
    q = w.input("q")
    lp = w.loop("hop", "for", 2, carried={"q": q})
    x = lp.call("nothere", lp.ph("q"))
    lp.update("q", x)
    w.ret(lp.end()["q"])
    with pytest.raises(CompileError, match="unknown function 'nothere'"):
        resolve(b.build())


def test_loop_body_names_do_not_leak():
    b = ProgramBuilder()
    b.model("task")
    b.function("strip", params=[("s", TEXT)], returns=TEXT)
    w = b.workflow()
    q = w.input("q")
    lp = w.loop("hop", "for", 2, carried={"q": q})
    x = lp.call("strip", lp.ph("q"), name="inner")
    lp.update("q", x)
    res = lp.end()["q"]
    w.ret(w.call("strip", "inner"))
    with pytest.raises(CompileError, match="unknown name 'inner'"):
        resolve(b.build())
    w.nodes.pop()
    w.ret(w.call("strip", res))
    resolve(b.build())
