"""std.text and std.json."""

from __future__ import annotations

import pytest

from promptc.bind import signature_types
from promptc.stdlib import json as sj
from promptc.stdlib import text as st
from promptc.types import TEXT, list_of


def test_text_functions():
    assert st.strip("  a b \n") == "a b"
    assert st.lower("HeLLo") == "hello"
    assert st.first_word("  HUM. Because it asks about a person") == "HUM"
    assert st.first_word("**LOC**") == "LOC"
    assert st.first_word("   ") == ""
    assert st.first_line("\n\n  first \nsecond") == "first"
    assert st.concat("ab", "cd") == "abcd"
    assert st.join(["a", "b", "c"], ", ") == "a, b, c"


def test_label():
    labels = ["ABBR", "HUM", "LOC"]
    assert st.label("I'd say: loc, maybe hum", labels) == "LOC"
    assert st.label("Humans are HUM", labels) == "HUM"  # whole words only
    assert st.label("  none of these ", labels) == "none of these"


def test_signatures_are_typed_for_the_compiler():
    assert signature_types(st.label) == ((("s", TEXT), ("labels", list_of(TEXT))), TEXT)
    for name in st.__all__ + sj.__all__:
        fn = getattr(st, name, None) or getattr(sj, name)
        assert fn.__doc__ and len(fn.__doc__) > 30, name


def test_json_parse_tolerant():
    assert sj.parse('{"a": 1}') == {"a": 1}
    assert sj.parse("```json\n[1, 2]\n```") == [1, 2]
    assert sj.parse('The result: {"a": {"b": "}"}} done') == {"a": {"b": "}"}}
    with pytest.raises(ValueError, match="no JSON value"):
        sj.parse("nothing here")


def test_json_dumps_and_get():
    assert sj.dumps({"k": "é", "n": [1]}) == '{"k": "é", "n": [1]}'
    assert sj.get({"a": 2}, "a") == 2
    assert sj.get({"a": 2}, "b") is None
    assert sj.get([5, 6], "1") == 6
    assert sj.get("text", "a") is None


def test_loads_tolerant_accepts_raw_newlines_inside_strings():
    from promptc.stdlib.json import loads_tolerant

    value, err = loads_tolerant('{"thought": "line one\nline two", "action": "search"}')
    assert err is None and value == {"thought": "line one\nline two", "action": "search"}
