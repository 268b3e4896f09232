"""Proposal extraction from many reply shapes, and rejection of unusable candidates."""

from __future__ import annotations

import attrs
import pytest

from promptc.optim import templates
from promptc.optim.extract import FILTERS, Rejection, check, extract, placeholders

META = dict(
    meta_static=" ".join(templates.static_text(t) for t in ("optimizer_user", "optimizer_system", "loss")),
    meta_headers=templates.headers("optimizer_user"),
    max_chars=600,
)
LOSS = templates.render(
    "loss", metric="exact_match", score="0.033", inputs='{"question": "What is the capital of Peru?"}',
    expected="LOC", got="ABBR", error="", explanation="",
)
CUR = "Classify the question as one of ABBR, ENTY, DESC, HUM, LOC, NUM."
LABELS = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")


def refused(candidate, current=CUR, **kw):
    """The filter that refuses `candidate`, or None."""
    r = check(candidate, current, **{**META, **kw})
    return None if r is None else r.filter


def test_tags_json_fence_plain():
    assert extract("blah <proposal>\nNew text.\n</proposal> trailing") == "New text."
    assert extract("<PROPOSAL>unclosed value") == "unclosed value"
    assert extract('{"proposal": "From JSON."}') == "From JSON."
    assert extract('Here you go:\n```json\n{"proposal": "Fenced JSON."}\n```') == "Fenced JSON."
    assert extract("Sure:\n```\nFenced text.\n```") == "Fenced text."
    assert extract("Just some text.") is None
    assert extract("Just some text.", plain_ok=True) == "Just some text."
    assert extract("New value: Label it.", plain_ok=True) == "Label it."
    assert extract("") is None and extract(None) is None
    assert extract("<proposal></proposal>") is None


def test_placeholders():
    assert placeholders("Use {a} and {b}, {a} again, not {{c}}.") == ("a", "b")


def test_check_rejections():
    cur = "Classify {question} into a label."
    ok = "Classify {question} into a label; places are LOC."
    assert check(ok, cur, **META) is None
    assert check(" Classify {question}  into a label. ", cur, **META) == Rejection("unchanged", "identical to the current value")
    r = check("Classify into a label; places are LOC.", cur, **META)
    assert r.filter == "dropped-placeholder" and "{question}" in r.reason
    assert refused(ok, cur, rejected=[ok]) == "already-rejected"
    r = check(ok + "x" * 600, cur, **META)
    assert r.filter == "too-long" and "too long" in str(r)
    assert refused("  ", cur) == "empty"
    r = check("Use <proposal> tags", cur.replace("{question}", ""), **META)
    assert r.filter == "meta-copy" and "tag" in r.reason


def test_filter_names_are_one_closed_set():
    assert FILTERS == (
        "empty", "unchanged", "already-rejected", "too-long", "code-shaped", "repetition", "meta-copy",
        "dropped-placeholder", "dropped-label", "no-proposal", "call-failed",
    )
    with pytest.raises(ValueError):
        Rejection("no-such-filter", "x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Rejection("empty", "x").filter = "unchanged"


def test_the_loss_line_repeated_seven_times_is_refused():
    """The instruction a real run accepted (it scored 11/30 against 9/30 on validation)."""
    line = "The workflow's final output was judged by the metric `exact_match` and scored 0.033."
    assert refused(" ".join([line] * 7)) == "repetition"
    assert refused("\n".join([line] * 7)) == "repetition"
    # once, it is still a copy of the optimizer's own meta-prompt
    assert refused(line, meta_shown=[LOSS]) == "meta-copy"
    assert refused(CUR + " " + line, meta_shown=[LOSS]) == "meta-copy"


def test_repetition():
    assert refused(CUR + " Answer with the label. Answer with the label. Answer with the label.") == "repetition"
    assert refused("Give the label only.\nGive the label only.") == "repetition"
    assert refused(CUR + " " + " ".join(["LOC"] * 40)) == "repetition"
    assert refused(CUR + " the answer is the label the answer is the label the answer is the label the answer is") == "repetition"
    # a list of definitions shares short phrases, and is fine
    definitions = (
        "Classify the question as one of ABBR, ENTY, DESC, HUM, LOC, NUM. Use ABBR for questions about "
        "abbreviations, ENTY for questions about entities, DESC for questions about descriptions, HUM for "
        "questions about people, LOC for questions about places, NUM for questions about numbers."
    )
    assert refused(definitions) is None
    parallel = (
        "Classify the question as one of ABBR, ENTY, DESC, HUM, LOC, NUM. If the question asks for a person, "
        "answer HUM. If the question asks for a place, answer LOC. If the question asks for a number, answer NUM."
    )
    assert refused(parallel) is None
    assert refused(CUR + " Reply with the label. Do not explain. Reply with the label only.") is None


def test_copies_of_the_rendered_loss_lines_are_refused():
    # the variable parts the optimizer was shown (metric, input, expected, got), not only the template
    copied = CUR + ' Input: {"question": "What is the capital of Peru?"} Expected: LOC Got: ABBR'
    assert refused(copied, meta_shown=[LOSS]) == "meta-copy"
    assert refused(copied) is None  # without the rendered lines there is nothing to compare with


def test_feedback_may_be_used_but_not_pasted():
    fb = ["The instruction should specify that questions asking for a location should be labeled LOC."]
    used = CUR + " Questions asking for a location should be labeled LOC."
    assert refused(used, feedback=fb) is None
    pasted = CUR.replace("Classify", "Label") + " " + fb[0]
    assert refused(pasted, feedback=fb) == "meta-copy"
    assert "feedback" in check(pasted, CUR, feedback=fb, **META).reason


def test_dropped_labels():
    assert refused("Classify the question as one of ABBR, ENTY, DESC, HUM, LOC.", labels=LABELS) == "dropped-label"
    r = check("Classify the question by its answer type.", CUR, labels=LABELS, **META)
    assert r.filter == "dropped-label" and "ABBR" in r.reason and "NUM" in r.reason
    assert refused("Classify the question as one of ABBR, ENTY, DESC, HUM, LOC, NUM; places are LOC.", labels=LABELS) is None
    # labels the current value does not name are not required; a word containing a label is not it
    assert refused("Name the answer type.", "Classify the question.", labels=LABELS) is None
    assert refused("Classify as ABBREVIATION, ENTY, DESC, HUM, LOC, NUM.", labels=LABELS) == "dropped-label"


def test_code_shaped():
    assert refused(CUR + "\n```python\nprint(1)\n```") == "code-shaped"
    assert refused('{"instruction": "Classify the question.", "labels": ["LOC"]}', "Classify the question.") == "code-shaped"
    assert refused("{'a': 1, 'b': [2, 3]}", "Classify the question.") == "code-shaped"
    assert refused("-> :: ; -- ## ** == ++ 1 2 3 ??", "Classify the question.") == "code-shaped"
    assert refused('{"answer": "...", "why": "...", "n": 2}', '{"answer": "...", "why": "..."}') is None
    # placeholders are prompt syntax, not code
    assert refused("{question}", "Classify {question}.") is None
    assert refused("Classify {question} as {labels}.", "Classify {question} as {labels} please.") is None


def test_check_rejects_absorbed_meta_prompt():
    cur = "Classify the question."
    header_copy = "Classify the question.\n## Constraints\n- keep it short"
    assert "header" in check(header_copy, cur, **META).reason
    copied = (
        "You improve one prompt of an LLM workflow. You receive the prompt's role, its current value, "
        "the other prompts used beside it. Classify the question."
    )
    assert "copies" in check(copied, cur, **META).reason
    # a genuine rewrite that shares ordinary words with the template is fine
    assert check("Classify the question; a question about a place is LOC, about a person HUM.", cur, **META) is None


def test_clip_keeps_the_sentences_that_fit():
    from promptc.optim.extract import clip

    text = "Name the rule first. Then give the label. " + "More words " * 30
    assert clip(text, 60) == "Name the rule first. Then give the label."
    assert clip("short", 60) == "short"
    # no sentence end in the second half of the limit: left whole, for check() to reject
    long_word = "x" * 100
    assert clip(long_word, 60) == long_word
