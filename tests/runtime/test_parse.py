"""Answer text -> declared type: tolerant where the meaning is clear, an error otherwise."""

from __future__ import annotations

import pytest

from promptc.runtime.parse import coerce, parse_answer
from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, enum, list_of, record

TREC = enum("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")


@pytest.mark.parametrize(
    "text,label",
    [
        ("HUM", "HUM"),
        ("hum", "HUM"),
        ("  Hum.\n", "HUM"),
        ("Label: HUM.", "HUM"),
        ('"LOC"', "LOC"),
        ("The answer is NUM because it asks how many", "NUM"),
        ("LOC or HUM", "LOC"),
        ("**DESC**", "DESC"),
    ],
)
def test_enum_labels(text, label):
    assert parse_answer(text, TREC) == (label, None)


def test_enum_needs_whole_word():
    value, err = parse_answer("A human being", TREC)
    assert value is None
    assert err.startswith("answer is not one of ABBR, ENTY, DESC, HUM, LOC, NUM: ")
    assert "A human being" in err


def test_enum_prefers_longer_label_at_same_position():
    assert parse_answer("New York", enum("New", "New York")) == ("New York", None)


def test_text_is_stripped():
    assert parse_answer("  hi there \n", TEXT) == ("hi there", None)


@pytest.mark.parametrize(
    "text,t,value",
    [
        ("There are 7 objects.", INT, 7),
        ("Answer: -3", INT, -3),
        ("1,234 items", INT, 1234),
        ("I count three.", INT, 3),
        ("about 2.5 km", FLOAT, 2.5),
        ("12", FLOAT, 12.0),
        ("Yes, it is.", BOOL, True),
        ("false", BOOL, False),
    ],
)
def test_scalars(text, t, value):
    assert parse_answer(text, t) == (value, None)


def test_scalar_errors():
    assert parse_answer("no idea", INT)[1].startswith("expected a number")
    assert parse_answer("2.5", INT)[1] == "expected an integer, got 2.5"
    assert parse_answer("maybe", BOOL)[1].startswith("expected yes/no")
    assert parse_answer(None, TEXT)[1] == "the model returned no text"


def test_record_from_fenced_block_with_coercion():
    t = record(answer=TEXT, count=INT, sure=BOOL)
    text = 'Here you go:\n```json\n{"answer": "Rome", "count": "4", "sure": "yes", "extra": 1}\n```'
    assert parse_answer(text, t) == ({"answer": "Rome", "count": 4, "sure": True}, None)


def test_record_first_object_in_prose():
    t = record(action=TEXT, arg=TEXT)
    assert parse_answer('I will search. {"action": "search", "arg": "a {b}"} ok', t) == (
        {"action": "search", "arg": "a {b}"},
        None,
    )


def test_record_errors():
    t = record(action=TEXT, arg=TEXT)
    assert parse_answer('{"action": "search"}', t) == (None, "missing field arg")
    assert parse_answer("[1, 2]", t)[1].startswith("expected a JSON object")
    value, err = parse_answer("search for it", t)
    assert value is None and err.startswith("no JSON value found in the answer")
    nested = record(step=record(n=INT))
    assert parse_answer('{"step": {"n": "x"}}', nested)[1] == "expected a number, got 'x' at step.n"


def test_list_and_json():
    assert parse_answer('["a", "b"]', list_of(TEXT)) == (["a", "b"], None)
    assert parse_answer('{"queries": ["a"]}', list_of(TEXT)) == (["a"], None)
    assert parse_answer('[1, "x"]', list_of(INT))[1].startswith("expected a number")
    assert parse_answer('{"a": [1]}', JSON) == ({"a": [1]}, None)
    assert parse_answer("just words", JSON) == ("just words", None)


def test_coerce_inputs():
    assert coerce("3", INT) == (3, None)
    assert coerce(3, TEXT) == ("3", None)
    assert coerce("hum", TREC) == ("HUM", None)
    assert coerce(True, INT)[1] is not None
    assert coerce(None, TEXT)[1] == "missing value (expected text)"
    assert coerce([["t", ["s"]]], JSON) == ([["t", ["s"]]], None)
