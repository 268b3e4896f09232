"""The TextMate grammar and the Pygments lexer follow grammar/pflow.lark."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Keyword, String

from promptc import syntax

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/**/*.pflow"))


def test_every_grammar_word_is_highlighted():
    w = syntax.words()
    classified = {*w["declarations"], *w["keywords"], *w["types"], *w["constants"]}
    assert syntax.grammar_words() <= classified
    assert {"model", "llm", "via", "trainable", "system", "metric"} <= classified  # the reader works at all


def test_committed_textmate_grammar_is_the_generated_one():
    committed = (ROOT / "grammar" / syntax.TEXTMATE_FILE).read_text(encoding="utf-8")
    assert committed == syntax.textmate_json(), (
        "grammar/pflow.tmLanguage.json is stale: regenerate it with `python -m promptc.syntax`"
    )


def test_textmate_patterns_compile_and_match_keywords():
    repo = json.loads((ROOT / "grammar" / syntax.TEXTMATE_FILE).read_text())["repository"]
    for name, rule in repo.items():
        for key in ("match", "begin", "end"):
            if key in rule:
                re.compile(rule[key])  # the patterns use no Oniguruma-only syntax
    keyword = re.compile(repo["keyword"]["match"])
    for word in syntax.words()["keywords"]:
        assert keyword.fullmatch(word), word
    assert not keyword.search("letter")  # whole words only
    decl = re.compile(repo["declaration"]["match"]).match("llm classify(question: text)")
    assert decl.group(1, 2) == ("llm", "classify")
    assert re.search(repo["string"]["patterns"][1]["match"], '"Question: {question}"').group(0) == "{question}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_pygments_lexes_every_example_without_errors(path):
    source = path.read_text()
    lexer = get_lexer_by_name("pflow")  # found through the pygments.lexers entry point
    assert type(lexer) is type(get_lexer_for_filename(path.name))
    tokens = list(lexer.get_tokens_unprocessed(source))
    assert [t for t in tokens if t[1] is Error] == []
    assert "".join(v for _, _, v in tokens) == source


def test_pygments_token_classes():
    src = 'model m = "openai/x" { timeout 3 }\nllm f(q: text) -> text via m { user "Q: {q}" }\n'
    toks = [(t, v) for _, t, v in syntax.PflowLexer().get_tokens_unprocessed(src) if v.strip()]
    assert (Keyword.Declaration, "llm") in toks and (Keyword, "via") in toks and (Keyword, "user") in toks
    assert (Keyword.Type, "text") in toks and (String.Interpol, "{q}") in toks
