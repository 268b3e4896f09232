"""Golden text of the compile errors users meet most (rendered exactly as the CLI prints them)."""

from __future__ import annotations

import textwrap

import pytest

from promptc.compiler import compile_source
from promptc.errors import CompileError

BASE = """\
use std.text { strip }
model task = "scripted/echo"
param instruction: prompt trainable "the task" = "Answer briefly."
llm ask(question: text) -> text via task {
  system "{instruction}"
  user   "Q: {question}"
}
workflow qa(question: text) -> text {
  let raw = ask(question)
  return strip(raw)
}
"""


def render(src: str) -> str:
    with pytest.raises(CompileError) as info:
        compile_source(src, "qa.pflow")
    return info.value.render()


def golden(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def test_base_compiles():
    assert compile_source(BASE, "qa.pflow").workflow.name == "qa"


def test_syntax_error_missing_paren():
    src = BASE.replace("let raw = ask(question)", "let raw = ask(question")
    assert render(src) == golden("""
        qa.pflow:10:3: error: unexpected 'return', expected one of ')', ',' (the '(' at line 9, column 16 is not closed)
            return strip(raw)
            ^~~~~~
        """)


def test_syntax_error_missing_equals():
    src = BASE.replace("let raw = ask(question)", "let raw ask(question)")
    assert render(src) == golden("""
        qa.pflow:9:11: error: unexpected 'ask', expected '='
            let raw ask(question)
                    ^~~
        """)


def test_syntax_error_unterminated_string():
    src = BASE.replace('"Q: {question}"', '"Q: {question}')
    assert render(src) == golden('''
        qa.pflow:6:10: error: unterminated string (a "..." string ends on its line; use """...""" for several lines)
            user   "Q: {question}
                   ^
        ''')


def test_unknown_name():
    src = BASE.replace("let raw = ask(question)", "let raw = ask(questoin)")
    assert render(src) == golden("""
        qa.pflow:9:17: error: unknown name 'questoin' (did you mean 'question'?)
            let raw = ask(questoin)
                          ^~~~~~~~
        """)


def test_wrong_type():  # raised by the typecheck pass
    src = BASE.replace("return strip(raw)", "return strip(1)")
    assert render(src) == golden("""
        qa.pflow:10:10: error: argument 1 of 'strip' expects text, got int
            return strip(1)
                   ^~~~~~~~
        """)


def test_missing_placeholder():
    src = BASE.replace('"Q: {question}"', '"Q: {query}"')
    assert render(src) == golden("""
        qa.pflow:6:14: error: placeholder '{query}' in llm 'ask' names neither a param nor an argument
            user   "Q: {query}"
                       ^~~~~~~
        """)


def test_unbounded_loop():
    src = BASE.replace("  return strip(raw)", "  loop {\n    raw = ask(raw)\n  }\n  return strip(raw)")
    assert render(src) == golden("""
        qa.pflow:10:3: error: unbounded loop: write `loop max N { ... }` with a constant N
            loop {
            ^~~~
        """)


def test_non_constant_for_bound():
    src = BASE.replace("  return strip(raw)", "  for i in 0..n {\n    raw = ask(raw)\n  }\n  return strip(raw)")
    assert render(src) == golden("""
        qa.pflow:10:15: error: unbounded loop: the bound of `for i in 0..N` must be an integer constant
            for i in 0..n {
                        ^
        """)


def test_duplicate_param():
    src = BASE.replace("param instruction", 'param instruction: prompt = "x"\nparam instruction')
    assert render(src) == golden("""
        qa.pflow:4:7: error: duplicate param 'instruction' (first declared at line 3)
          param instruction: prompt trainable "the task" = "Answer briefly."
                ^~~~~~~~~~~
        """)


def test_break_if_not_last():
    src = BASE.replace(
        "  return strip(raw)", '  loop max 3 {\n    break if raw == ""\n    raw = ask(raw)\n  }\n  return strip(raw)'
    )
    assert render(src) == golden("""
        qa.pflow:11:5: error: `break if` must be the last statement of a `loop max` body
              break if raw == ""
              ^~~~~~~~~~~~~~~~~~
        """)


def test_end_of_file():
    src = BASE[: BASE.rindex("}")]
    assert render(src) == golden("""
        qa.pflow:10:20: error: unexpected end of file, expected one of a newline or ';', '}' (the '{' at line 8, column 37 is not closed)
            return strip(raw)
                             ^
        """)


# -- branches and fan-out ---------------------------------------------------------------------

LIST_ARG = ("workflow qa(question: text)", "workflow qa(question: text, ps: list[text])")
RET = "  return strip(raw)"


def test_unbounded_fan_out():
    src = BASE.replace(*LIST_ARG).replace(RET, "  for p in ps {\n    raw = raw + ask(p)\n  }\n" + RET)
    assert render(src) == golden("""
        qa.pflow:10:3: error: unbounded fan-out: write `for p in LIST max N { ... }` with a constant N
            for p in ps {
            ^~~~~~~~~~~
        """)


def test_non_constant_fan_out_bound():
    src = BASE.replace(*LIST_ARG).replace(RET, "  for p in ps max n {\n    raw = raw + ask(p)\n  }\n" + RET)
    assert render(src) == golden("""
        qa.pflow:10:19: error: unbounded fan-out: the bound of `for p in LIST max N` must be an integer constant
            for p in ps max n {
                            ^
        """)


def test_break_outside_a_loop():
    src = BASE.replace(RET, '  break if raw == ""\n' + RET)
    assert render(src) == golden("""
        qa.pflow:10:3: error: `break if` is only allowed at the end of a `loop max N { ... }` body
            break if raw == ""
            ^~~~~~~~~~~~~~~~~~
        """)


def test_break_inside_a_branch():
    src = BASE.replace(RET, '  loop max 3 {\n    raw = ask(raw)\n    if raw == "" {\n      break if true\n    }\n  }\n' + RET)
    assert render(src) == golden("""
        qa.pflow:13:7: error: `break if` cannot be inside an `if` branch: it is the last statement of a `loop max` body (fold the branch's condition into it: `break if c and d`)
                break if true
                ^~~~~~~~~~~~~
        """)


def test_merged_variable_type_mismatch():
    src = BASE.replace(RET, '  let n = 0\n  if raw == "" {\n    n = "none"\n  }\n' + RET)
    assert render(src) == golden("""
        qa.pflow:12:5: error: 'n' is text after one branch of the `if` and int after the other (a variable keeps one type)
              n = "none"
              ^~~~~~~~~~
        """)


def test_if_condition_not_bool():
    src = BASE.replace(RET, "  if raw {\n    raw = ask(raw)\n  }\n" + RET)
    assert render(src) == golden("""
        qa.pflow:10:6: error: the condition of an `if` must be bool, got text
            if raw {
               ^~~
        """)


def test_return_inside_a_branch():
    src = BASE.replace(RET, '  if raw == "" {\n    return raw\n  }\n' + RET)
    assert render(src) == golden("""
        qa.pflow:11:5: error: `return` is only allowed at the end of the workflow, not inside a loop or a branch
              return raw
              ^~~~~~~~~~
        """)


# -- composition ------------------------------------------------------------------------------


def test_missing_import(tmp_path):
    src = 'use "retrieve.pflow" { multihop_retrieve }\n' + BASE
    with pytest.raises(CompileError) as info:
        compile_source(src, str(tmp_path / "qa.pflow"))
    assert info.value.render().replace(str(tmp_path), "DIR") == golden("""
        DIR/qa.pflow:1:24: error: cannot import 'retrieve.pflow': no such file (DIR/retrieve.pflow)
          use "retrieve.pflow" { multihop_retrieve }
                                 ^~~~~~~~~~~~~~~~~
        """)


def test_import_cycle(tmp_path):
    (tmp_path / "a.pflow").write_text('use "b.pflow" { b }\nworkflow a(x: text) -> text { return b(x) }\n')
    (tmp_path / "b.pflow").write_text('use "a.pflow" { a }\nworkflow b(x: text) -> text { return a(x) }\n')
    with pytest.raises(CompileError) as info:
        compile_source((tmp_path / "a.pflow").read_text(), str(tmp_path / "a.pflow"))
    assert info.value.render().replace(str(tmp_path), "DIR") == golden("""
        DIR/b.pflow:1:17: error: import cycle: a.pflow -> b.pflow -> a.pflow
          use "a.pflow" { a }
                          ^
        """)


# ---- type errors in loops and branches: the caret is on the statement at fault ----------
# (not on the statement that last defined the value), in the words of the source.

LOOPS = """\
use std.text { strip }
model task = "scripted/echo"
llm count(q: text) -> int via task { user "{q}" }
llm judge(q: text) -> json via task { user "{q}" }
workflow qa(question: text, c: bool) -> text {
  let n = count(question)
  let j = judge(question)
BODY
  return question
}
"""


def loops(body: str) -> str:
    return render(LOOPS.replace("BODY", textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")))


def test_break_if_on_a_value_defined_earlier_points_at_the_break():
    assert loops("""
        loop max 3 {
          question = strip(question)
          break if n
        }
        """) == golden("""
        qa.pflow:10:5: error: `break if` needs a bool condition, got int
              break if n
              ^~~~~~~~~~
        """)


def test_break_if_on_a_variable_of_the_body_points_at_the_break():
    # (before: the caret was on `question = strip(question)`, which defined the value)
    assert loops("""
        loop max 3 {
          question = strip(question)
          break if question
        }
        """) == golden("""
        qa.pflow:10:5: error: `break if` needs a bool condition, got text
              break if question
              ^~~~~~~~~~~~~~~~~
        """)


def test_loop_variable_reassigned_with_another_type_points_at_the_assignment():
    # (before: the caret was on the `for` line)
    assert loops("""
        for i in 0..3 {
          question = strip(question)
          question = n
        }
        """) == golden("""
        qa.pflow:10:5: error: loop variable 'question' is text, but the loop assigns it int
              question = n
              ^~~~~~~~~~~~
        """)


def test_loop_variable_assigned_in_both_branches_of_the_body_points_at_the_if():
    assert loops("""
        loop max 2 {
          if c {
            question = strip(question)
          } else {
            question = n
          }
        }
        """) == golden("""
        qa.pflow:9:5: error: 'question' is text after one branch of the `if` and int after the other (a variable keeps one type)
              if c {
              ^~~~
        """)


def test_merge_where_only_the_else_branch_changes_the_type_points_at_it():
    assert loops("""
        if c {
          let t = strip(question)
        } else {
          question = n
        }
        """) == golden("""
        qa.pflow:11:5: error: 'question' is text after one branch of the `if` and int after the other (a variable keeps one type)
              question = n
              ^~~~~~~~~~~~
        """)


def test_merge_where_both_branches_assign_points_at_the_if():
    # Which branch is wrong depends on what the variable was meant to be: the caret is on
    # the `if` whose branches disagree (before: on the first branch's assignment).
    assert loops("""
        if c {
          question = strip(question)
        } else {
          question = n
        }
        """) == golden("""
        qa.pflow:8:3: error: 'question' is text after one branch of the `if` and int after the other (a variable keeps one type)
            if c {
            ^~~~
        """)


def test_merge_in_a_nested_branch_points_at_the_inner_assignment():
    assert loops("""
        if c {
          if c {
            question = n
          }
        }
        """) == golden("""
        qa.pflow:10:7: error: 'question' is int after one branch of the `if` and text after the other (a variable keeps one type)
                question = n
                ^~~~~~~~~~~~
        """)


@pytest.mark.parametrize("body, line, col", [
    ("if j {\n  question = strip(question)\n}", 8, 6),
    ("if j {\n}", 8, 6),  # nothing in the branch (before: compiled)
    ("if j {\n  question = strip(question)\n} else {\n  question = strip(question)\n}", 8, 6),
    ("if c {\n  question = strip(question)\n} else if j {\n  question = strip(question)\n}", 10, 13),  # (before: compiled)
    ("if c {\n  if j {\n    question = strip(question)\n  }\n}", 9, 8),
    ("loop max 2 {\n  if j {\n    question = strip(question)\n  }\n}", 9, 8),
])
def test_an_if_on_a_json_value_is_refused_at_its_condition(body, line, col):
    # before: "a guard must be bool, got json" at the first statement of the branch
    head, excerpt, caret = loops(body).splitlines()
    assert head == (
        f"qa.pflow:{line}:{col}: error: the condition of an `if` must be bool, got json (compare it, e.g. `if x == true`)"
    )
    assert excerpt.strip().endswith("if j {") and caret.strip() == "^"
    assert excerpt.index("j") == caret.index("^")


def test_an_if_on_a_comparison_of_a_json_value_compiles():
    src = LOOPS.replace("BODY", "  if j == true {\n    question = strip(question)\n  }")
    assert compile_source(src, "qa.pflow").workflow.name == "qa"


# ---- `supports VALUE in FIELD` in the train block: the caret is on the value's name ------

TRAIN = "use std.metrics { f1 }\ntrain qa {\n  metric f1\n  supports {value} in supporting_titles\n}\n"


def test_supports_names_a_variable_the_workflow_lacks():
    assert render(BASE + TRAIN.replace("{value}", "rwa")) == golden("""
        qa.pflow:15:12: error: supports: workflow 'qa' has no variable 'rwa' (did you mean 'raw'?)
            supports rwa in supporting_titles
                     ^~~
        """)


def test_supports_names_an_argument_or_a_declaration():
    assert render(BASE + TRAIN.replace("{value}", "question")).splitlines()[0] == (
        "qa.pflow:15:12: error: supports: 'question' is an argument of workflow 'qa'; name a value its steps"
        " compute (e.g. what a retrieval returns)"
    )
    assert render(BASE + TRAIN.replace("{value}", "ask")).splitlines()[0] == (
        "qa.pflow:15:12: error: supports: 'ask' is an llm; name a variable of workflow 'qa'"
        " (e.g. what a retrieval returns)"
    )


def test_supports_given_twice_and_its_syntax():
    twice = TRAIN.replace("{value}", "raw").replace("titles\n}", "titles\n  supports raw in titles\n}")
    assert render(BASE + twice).splitlines()[0] == "qa.pflow:16:12: error: 'supports raw' is given twice in the train block"
    missing_in = BASE + TRAIN.replace("{value} in", "raw")
    assert render(missing_in).splitlines()[0].startswith("qa.pflow:15:16: error: unexpected 'supporting_titles', expected 'in'")
