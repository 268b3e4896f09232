"""Message rendering: placeholders, escapes, non-text values, demos, schemas."""

from __future__ import annotations

from runtime_helpers import trec_program

from promptc.ir import Demo, LlmDef, Message
from promptc.runtime.render import build_request, json_schema, render_messages, render_template
from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, enum, list_of, record


def test_template_substitution_and_escapes():
    out = render_template("{a} {{literal}} {b} {unknown} {{{a}}}", {"a": "x", "b": [1, "y"]})
    assert out == 'x {literal} [1, "y"] {unknown} {x}'


def test_non_text_values_render_as_json():
    assert render_template("{r}|{n}|{t}|{u}", {"r": {"k": "é"}, "n": 3, "t": True, "u": None}) == '{"k": "é"}|3|true|null'


def test_params_and_args_in_messages():
    p = trec_program()
    msgs = render_messages(p, p.llm("classify"), {"question": "Where is Rome?"})
    assert msgs == (
        {"role": "system", "content": "Classify the question.\nReply with the label only."},
        {"role": "user", "content": "Question: Where is Rome?"},
    )


def test_demos_respect_max_and_json_outputs():
    demos = tuple(Demo((("question", f"q{i}"),), {"label": "HUM"}) for i in range(6))
    p = trec_program(output=record(label=TEXT), demos=demos)
    msgs = render_messages(p, p.llm("classify"), {"question": "final"})
    assert len(msgs) == 2 + 2 * 4  # max_demos = 4
    assert msgs[2] == {"role": "assistant", "content": '{"label": "HUM"}'}
    # the JSON instruction goes on the real question only, not on the demo turns
    assert "JSON" not in msgs[1]["content"]
    assert msgs[-1]["content"].startswith("Question: final\n\nAnswer with JSON only")


def test_request_fields():
    p = trec_program()
    req = build_request(p, p.llm("classify"), {"question": "Q"}, phase="backward")
    assert req.response_format is None and req.choices == ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")
    assert req.phase == "backward" and req.model == "scripted/test"


def test_model_resolves_env(monkeypatch):
    monkeypatch.setenv("PROMPTC_TEST_NO_SUCH_VAR", "scripted/other")
    p = trec_program()
    assert build_request(p, p.llm("classify"), {"question": "Q"}).model == "scripted/other"


def test_no_user_template_puts_instruction_last():
    llm = LlmDef("f", (("x", TEXT),), list_of(TEXT), "task", (Message("system", "Do {x}"),))
    msgs = render_messages(trec_program(), llm, {"x": "it"})
    assert msgs[0] == {"role": "system", "content": "Do it"}
    assert msgs[1]["role"] == "user" and '"type": "array"' in msgs[1]["content"]


def test_json_schema():
    t = record(a=TEXT, b=list_of(INT), c=enum("X", "Y"), d=FLOAT, e=BOOL, f=JSON)
    assert json_schema(t) == {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "array", "items": {"type": "integer"}},
            "c": {"type": "string", "enum": ["X", "Y"]},
            "d": {"type": "number"},
            "e": {"type": "boolean"},
            "f": {},
        },
        "required": ["a", "b", "c", "d", "e", "f"],
        "additionalProperties": False,
    }
