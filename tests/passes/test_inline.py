"""Pass 0, inline: `use "x.pflow" { wf }` copies another file's workflow into the caller,
its declarations under qualified names; errors for missing files, wrong names, cycles."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from promptc.compiler import compile_file
from promptc.errors import CompileError
from promptc.runtime.interpreter import run_forward
from promptc.runtime.records import CallRequest, CallResult

LIB = """
model task = "scripted/echo"
param style: prompt trainable "how to shout" = "SHOUT"
llm shout(x: text) -> text via task { system "{style}"; user "{x}" }
workflow loud(x: text) -> text {
  let y = x
  if x != "" { y = shout(x) }
  return y
}
"""


def write(d: Path, name: str, src: str) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(src).lstrip("\n"), encoding="utf-8")
    return p


class Echo:
    """`<system>(<user>)` for every call."""

    def __init__(self):
        self.systems: list[str] = []

    async def call(self, req: CallRequest) -> CallResult:
        system, user = req.messages[0]["content"], req.messages[-1]["content"]
        self.systems.append(system)
        return CallResult(text=f"{system}({user})")


def test_two_call_sites_share_the_qualified_params_and_run(tmp_path):
    write(tmp_path, "lib/loud.pflow", LIB)
    main = write(tmp_path, "main.pflow", """
        use "lib/loud.pflow" { loud }
        model task = "scripted/echo"
        workflow w(a: text, b: bool) -> text {
          let r = loud(a)
          if b { r = loud(r) }
          return r
        }
        """)
    program = compile_file(main)
    assert [p.name for p in program.params] == ["loud.style"]
    assert [l.name for l in program.llms] == ["loud.shout"] and program.llm("loud.shout").model == "task"
    assert [m.name for m in program.models] == ["task"]  # identical model: shared
    names = [n.name for n in program.nodes]
    assert "loud.y" in names and "loud.1.y" in names  # the second call site has its own nodes
    # the second call is inside a branch: its nodes are guarded by it, and-ed with the callee's own guard
    second = program.node("loud.1.y")
    assert program.node(second.guard).op == "prim" and program.node(second.guard).args == ("b", "loud.1.if.cond")
    engine = Echo()
    (t1, t2, t3) = run_forward(program, [{"a": "hi", "b": True}, {"a": "hi", "b": False}, {"a": "", "b": True}], engine)
    assert (t1.output, t2.output, t3.output) == ("SHOUT(SHOUT(hi))", "SHOUT(hi)", "")
    assert set(engine.systems) == {"SHOUT"}


def test_unused_declarations_of_the_imported_file_are_left_behind(tmp_path):
    write(tmp_path, "loud.pflow", LIB.replace("workflow", 'param unused: prompt trainable = "x"\nworkflow'))
    main = write(tmp_path, "main.pflow", """
        use "loud.pflow" { loud }
        workflow w(a: text) -> text { return loud(a) }
        """)
    program = compile_file(main)
    assert [p.name for p in program.params] == ["loud.style"]
    assert [m.name for m in program.models] == ["loud.task"]  # the caller has no model of that name


def test_nested_imports_qualify_twice_and_python_modules_are_rebased(tmp_path):
    write(tmp_path, "lib/tools.py", '''
        def twice(s: str) -> str:
            """Repeats s."""
            return s + s
        ''')
    write(tmp_path, "lib/inner.pflow", """
        use "tools.py" { twice }
        model task = "scripted/echo"
        param p: prompt trainable = "P"
        llm f(x: text) -> text via task { system "{p}"; user "{x}" }
        workflow inner(x: text) -> text { return twice(f(x)) }
        """)
    write(tmp_path, "lib/outer.pflow", """
        use "inner.pflow" { inner }
        workflow outer(x: text) -> text { return inner(x) }
        """)
    main = write(tmp_path, "main.pflow", """
        use "lib/outer.pflow" { outer }
        workflow w(x: text) -> text { return outer(x) }
        """)
    program = compile_file(main)
    assert [p.name for p in program.params] == ["outer.inner.p"]
    assert program.llm("outer.inner.f").uses == ("outer.inner.p",)
    fn = program.function("outer.inner.twice")
    assert fn.module == str(Path("lib") / "tools.py") and fn.doc == "Repeats s."
    (t,) = run_forward(program, [{"x": "a"}], Echo())
    assert t.output == "P(a)P(a)"


def test_a_call_in_a_loop_is_unrolled_with_it(tmp_path):
    write(tmp_path, "loud.pflow", LIB)
    main = write(tmp_path, "main.pflow", """
        use "loud.pflow" { loud }
        workflow w(xs: list[text]) -> text {
          let out = ""
          for x in xs max 2 { out = out + loud(x) }
          return out
        }
        """)
    program = compile_file(main)
    llm_nodes = [n for n in program.nodes if n.op == "llm"]
    assert [(n.name, str(n.time)) for n in llm_nodes] == [("loud.y@x#0", "x#0"), ("loud.y@x#1", "x#1")]
    (t,) = run_forward(program, [{"xs": ["a", "", "c"]}], Echo())
    assert t.output == "SHOUT(a)"


@pytest.mark.parametrize(
    "use, call, message",
    [
        ('use "nope.pflow" { loud }', "loud(a)", "cannot import 'nope.pflow': no such file"),
        ('use "loud.pflow" { quiet }', "quiet(a)", "'loud.pflow' has no workflow 'quiet' (its workflow is 'loud')"),
        ('use "loud.pflow" { loud }', "loud(a, a)", "workflow 'loud' takes 1 argument, got 2"),
    ],
)
def test_import_errors_are_located(tmp_path, use, call, message):
    write(tmp_path, "loud.pflow", LIB)
    main = write(tmp_path, "main.pflow", f"{use}\nworkflow w(a: text) -> text {{ return {call} }}\n")
    with pytest.raises(CompileError) as info:
        compile_file(main)
    assert message in info.value.message
    assert info.value.span.file == str(main) and info.value.span.line in (1, 2)


def test_import_cycle_is_a_located_error(tmp_path):
    write(tmp_path, "a.pflow", 'use "b.pflow" { b }\nworkflow a(x: text) -> text { return b(x) }\n')
    write(tmp_path, "b.pflow", 'use "a.pflow" { a }\nworkflow b(x: text) -> text { return a(x) }\n')
    with pytest.raises(CompileError) as info:
        compile_file(tmp_path / "a.pflow")
    err = info.value
    assert err.message == "import cycle: a.pflow -> b.pflow -> a.pflow"
    assert err.span.file.endswith("b.pflow") and err.render().splitlines()[1].strip() == 'use "a.pflow" { a }'


def test_an_error_inside_an_imported_file_shows_that_file(tmp_path):
    write(tmp_path, "loud.pflow", LIB.replace("y = shout(x)", "y = shout(1)"))
    main = write(tmp_path, "main.pflow", 'use "loud.pflow" { loud }\nworkflow w(a: text) -> text { return loud(a) }\n')
    with pytest.raises(CompileError) as info:
        compile_file(main)
    lines = info.value.render().splitlines()
    assert lines[0].startswith(str(tmp_path / "loud.pflow") + ":6:")
    assert "argument 1 of 'loud.shout' expects text, got int" in lines[0]
    assert lines[1].strip() == 'if x != "" { y = shout(1) }'


def test_a_decorated_workflow_calls_a_decorated_workflow_imported_from_another_file(tmp_path):
    import importlib.util
    import sys

    write(tmp_path, "lib_wf.py", '''
        import promptc
        task = promptc.model(default="scripted/echo")
        style = promptc.prompt("SHOUT", trainable=True, role="how to shout")

        @promptc.llm(via=task, system="{style}", user="{x}")
        def shout(x: str) -> str: ...

        @promptc.workflow
        def loud(x: str) -> str:
            return shout(x)
        ''')
    main = write(tmp_path, "main_wf.py", '''
        import promptc
        from lib_wf import loud

        @promptc.workflow
        def w(a: str) -> str:
            return loud(loud(a))
        ''')
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location("main_wf_inline_test", main)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        program = mod.w.program
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lib_wf", None)
    assert [p.name for p in program.params] == ["loud.style"]
    (t,) = run_forward(program, [{"a": "hi"}], Echo())
    assert t.output == "SHOUT(SHOUT(hi))"


def test_the_source_hash_covers_the_imported_file(tmp_path):
    lib = write(tmp_path, "loud.pflow", LIB)
    main = write(tmp_path, "main.pflow", 'use "loud.pflow" { loud }\nworkflow w(a: text) -> text { return loud(a) }\n')
    before = compile_file(main).source_hash
    lib.write_text(lib.read_text().replace('"SHOUT"', '"YELL"'))
    assert compile_file(main).source_hash != before
