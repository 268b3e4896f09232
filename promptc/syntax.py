"""Syntax highlighting for `.pflow`, derived from `grammar/pflow.lark` so it cannot drift.

- `words()` reads the grammar's quoted words (its keywords: `use`, `model`, `llm`, ...,
  `system`, `metric`, ...) and sorts them into declarations, types, constants and the
  other keywords;
- `textmate()` builds the TextMate grammar that VS Code and most editors read; it is
  committed as `grammar/pflow.tmLanguage.json` and a test checks that the committed file is
  what this function builds (regenerate with `python -m promptc.syntax`);
- `PflowLexer` is the Pygments lexer (registered as the `pflow` lexer through the
  `pygments.lexers` entry point), for documentation tools that highlight code blocks.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from importlib import resources
from pathlib import Path

from pygments.lexer import RegexLexer, words as _words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from promptc.ir import MODEL_OPTIONS
from promptc.types import SCALARS

DECLARATIONS = ("use", "model", "param", "llm", "workflow", "train")
CONSTANTS = ("true", "false")
TYPE_WORDS = tuple(sorted({*SCALARS, "list", "enum"}))
TEXTMATE_FILE = "pflow.tmLanguage.json"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


@functools.lru_cache(maxsize=1)
def grammar_words() -> frozenset[str]:
    """Every quoted word of grammar/pflow.lark (comments skipped)."""
    text = resources.files("promptc.grammar").joinpath("pflow.lark").read_text(encoding="utf-8")
    text = re.sub(r"//[^\n]*", "", text)
    return frozenset(re.findall(r'"([a-z_]+)"', text))


def words() -> dict[str, tuple[str, ...]]:
    """The grammar's words by highlighting class (types include the scalar type names,
    which the grammar reads as names; model options are the `model { ... }` keys)."""
    found = grammar_words()
    missing = [w for w in (*DECLARATIONS, *CONSTANTS) if w not in found]
    if missing:  # the grammar changed under this module: fail loudly, not silently stale
        raise RuntimeError(f"pflow.lark no longer has {missing}; update promptc/syntax.py")
    special = {*DECLARATIONS, *CONSTANTS, *TYPE_WORDS}
    return {
        "declarations": DECLARATIONS,
        "keywords": tuple(sorted(found - special)),
        "types": TYPE_WORDS,
        "constants": CONSTANTS,
        "options": tuple(MODEL_OPTIONS),
    }


def _alt(ws: tuple[str, ...]) -> str:
    return r"\b(?:" + "|".join(sorted(ws, key=lambda w: (-len(w), w))) + r")\b"


def textmate() -> dict:
    """The TextMate grammar of `.pflow` (scope `source.pflow`)."""
    w = words()
    placeholder = {"name": "variable.other.placeholder.pflow", "match": r"\{" + _IDENT + r"\}"}
    escape = {"name": "constant.character.escape.pflow", "match": r"\\."}
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "pflow",
        "scopeName": "source.pflow",
        "fileTypes": ["pflow"],
        "comment": "Generated from grammar/pflow.lark by promptc/syntax.py; do not edit by hand.",
        "patterns": [{"include": f"#{k}"} for k in (
            "comment", "long-string", "string", "declaration", "keyword", "type", "constant", "option", "number",
            "operator",
        )],
        "repository": {
            "comment": {"name": "comment.line.number-sign.pflow", "match": "#.*$"},
            "long-string": {"name": "string.quoted.triple.pflow", "begin": '"""', "end": '"""',
                            "patterns": [escape, placeholder]},
            "string": {"name": "string.quoted.double.pflow", "begin": '"', "end": '"|$',
                       "patterns": [escape, placeholder]},
            "declaration": {
                "match": r"\b(" + "|".join(d for d in w["declarations"] if d != "use") + r")\s+(" + _IDENT + ")",
                "captures": {"1": {"name": "keyword.declaration.pflow"}, "2": {"name": "entity.name.function.pflow"}},
            },
            "keyword": {"name": "keyword.control.pflow", "match": _alt(w["keywords"] + ("use",))},
            "type": {"name": "support.type.pflow", "match": _alt(w["types"])},
            "constant": {"name": "constant.language.pflow", "match": _alt(w["constants"])},
            "option": {"name": "variable.parameter.option.pflow", "match": _alt(w["options"])},
            "number": {"name": "constant.numeric.pflow", "match": r"-?\b\d+(?:\.\d+(?:[eE][-+]?\d+)?)?\b"},
            "operator": {"name": "keyword.operator.pflow", "match": r"->|\.\.|==|!=|<=|>=|[<>=+]"},
        },
    }


def textmate_json() -> str:
    return json.dumps(textmate(), indent=2, ensure_ascii=False) + "\n"


def _string_state(close: str) -> list:
    return [
        (r"\\.", String.Escape),
        (r"\{" + _IDENT + r"\}", String.Interpol),
        (close, String, "#pop"),
        (r'[^"\\{]+', String),
        (r'["{]', String),
    ]


class PflowLexer(RegexLexer):
    """Pygments lexer for promptc's `.pflow` workflow language."""

    name = "pflow"
    aliases = ["pflow"]
    filenames = ["*.pflow"]
    mimetypes = ["text/x-pflow"]

    _w = words()
    tokens = {
        "root": [
            (r"[ \t\f]+|\r?\n", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"""', String, "long"),
            (r'"', String, "string"),
            (_words(_w["declarations"], suffix=r"\b"), Keyword.Declaration),
            (_words(_w["keywords"], suffix=r"\b"), Keyword),
            (_words(_w["types"], suffix=r"\b"), Keyword.Type),
            (_words(_w["constants"], suffix=r"\b"), Keyword.Constant),
            (r"-?\d+\.\d+(?:[eE][-+]?\d+)?", Number.Float),
            (r"-?\d+", Number.Integer),
            (_IDENT, Name),
            (r"->|\.\.|==|!=|<=|>=|[<>=+]", Operator),
            (r"[{}()\[\]:.,;]", Punctuation),
        ],
        "string": _string_state('"'),
        "long": _string_state('"""'),
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m promptc.syntax [DIR]`: write the TextMate grammar to DIR (default grammar/)."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "grammar"
    (folder / TEXTMATE_FILE).write_text(textmate_json(), encoding="utf-8")
    print(folder / TEXTMATE_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
