"""`promptc.template`: the one implementation of the `{name}` template syntax."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptc import template as T
from promptc.runtime.render import format_value, render_template

# texts made of the pieces that matter: braces, names, other characters
PIECES = st.sampled_from(["{", "}", "{{", "}}", "a", "b", "x1", " ", ".", "{a}", "{b}", "{zz}", "é", "\n"])
TEXTS = st.lists(PIECES, max_size=12).map("".join)
VALUES = {"a": "A", "b": [1, "two"], "x1": 3}

# the runtime's substitution before there was one template module (a regex), kept as the
# reference its lenient reading must match
_OLD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _old_render(text, values):
    def sub(m):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            return tok[0]
        return format_value(values[m.group(1)]) if m.group(1) in values else tok

    return _OLD.sub(sub, text)


@given(TEXTS)
def test_lenient_render_is_the_runtimes_old_substitution(text):
    assert render_template(text, VALUES) == _old_render(text, VALUES)


@given(TEXTS)
def test_strict_reading_agrees_with_str_format(text):
    try:
        names = T.placeholders(text)
    except T.TemplateError:
        with pytest.raises((ValueError, IndexError, KeyError)):
            text.format(**{k: 0 for k in ("a", "b", "x1", "zz")})
        return
    values = {n: f"<{n}>" for n in names}
    assert T.render(text, values) == text.format(**values)


def test_lenient_reading():
    assert T.placeholders("{a} {1} { {b}} }", strict=False) == ("a", "b")
    assert T.render("{a} {missing} {", {"a": 1}, strict=False) == "1 {missing} {"
    assert T.without_placeholders("{{x}} {a}, {b}!") == "{{x}} , !"
    with pytest.raises(KeyError):
        T.render("{missing}", {})


@pytest.mark.parametrize(
    "text,message,offset",
    [
        ("oops {", "'{' must start a placeholder", 5),
        ("a {x.y} b", "placeholder '{x.y}' must be a plain name", 2),
        ("{q!r}", "placeholder '{q!r}' must be a plain name", 0),
        ("}", "single '}'", 0),
    ],
)
def test_strict_errors_say_what_and_where(text, message, offset):
    with pytest.raises(T.TemplateError) as e:
        T.scan(text)
    assert message in e.value.message and e.value.offset == offset


def test_escape_round_trips():
    text = "a {b} {{c}} }"
    assert T.render(T.escape(text), {}) == text
