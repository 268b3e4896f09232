"""Proposal extraction from many reply shapes, and rejection of unusable candidates."""

from __future__ import annotations

from promptc.optim import templates
from promptc.optim.extract import check, extract, placeholders

META = dict(
    meta_static=templates.static_text("optimizer_user") + " " + templates.static_text("optimizer_system"),
    meta_headers=templates.headers("optimizer_user"),
    max_chars=600,
)


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
    assert "identical" in check(" Classify {question}  into a label. ", cur, **META)
    assert "placeholder" in check("Classify into a label; places are LOC.", cur, **META)
    assert "rejected" in check(ok, cur, rejected=[ok], **META)
    assert "too long" in check(ok + "x" * 600, cur, **META)
    assert "empty" in check("  ", cur, **META)
    assert "tag" in check("Use <proposal> tags", cur.replace("{question}", ""), **META)


def test_check_rejects_absorbed_meta_prompt():
    cur = "Classify the question."
    header_copy = "Classify the question.\n## Constraints\n- keep it short"
    assert "header" in check(header_copy, cur, **META)
    copied = (
        "You improve one prompt of an LLM workflow. You receive the prompt's role, its current value, "
        "the other prompts used beside it. Classify the question."
    )
    assert "copies" in check(copied, cur, **META)
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
