"""`std.metrics`: scoring a workflow's answer against the expected one (SQuAD-style).

Texts are normalized before comparison: lowercased, punctuation removed, the articles
"a", "an", "the" removed, whitespace collapsed. A list of acceptable answers may be given
as `expected`; the best match counts. Non-text values (enum labels, numbers, bools) are
compared by their text, so labels compare case-insensitively.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Any

__all__ = ["exact_match", "f1", "f1_explained", "contains", "normalize"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize(s: Any) -> str:
    """Lowercases the text, removes punctuation and the articles a/an/the, and collapses
    whitespace (SQuAD answer normalization)."""
    text = _as_text(s).lower()
    text = "".join(ch if ch not in _PUNCT else " " for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(got: Any, expected: Any) -> float:
    """1.0 when the answer equals the expected answer after normalization (case,
    punctuation, articles and spacing ignored), else 0.0. Any extra word in the answer
    makes it wrong."""
    g = normalize(got)
    return max((1.0 if g == normalize(e) else 0.0) for e in _alternatives(expected))


def f1(got: Any, expected: Any) -> float:
    """Token-overlap F1 between the normalized answer and the expected answer: rewards
    answers that contain the expected words and penalizes extra words."""
    return max(_f1(normalize(got).split(), normalize(e).split()) for e in _alternatives(expected))


def f1_explained(got: Any, expected: Any) -> dict:
    """Token F1 (as `f1`) with an explanation for the backward pass: which words of the
    expected answer the answer misses and which of its words are not in it. Returns
    `{"score": float, "feedback": text}`."""
    g = normalize(got).split()
    best = max(_alternatives(expected), key=lambda e: _f1(g, normalize(e).split()))
    e = normalize(best).split()
    score = _f1(g, e)
    if score == 1.0:
        return {"score": score, "feedback": "The answer matches the expected answer."}
    missing = [w for w in dict.fromkeys(e) if w not in g]
    extra = [w for w in dict.fromkeys(g) if w not in e]
    parts = []
    if missing:
        parts.append("the answer lacks the expected word(s): " + ", ".join(missing))
    if extra:
        parts.append("it has word(s) the expected answer does not: " + ", ".join(extra[:12]) + ("..." if len(extra) > 12 else ""))
    if not g:
        parts = ["the answer is empty"]
    return {"score": score, "feedback": "Token F1 " + f"{score:.2f}: " + "; ".join(parts) + "."}


def contains(got: Any, expected: Any) -> float:
    """1.0 when the normalized expected answer appears in the normalized answer (as whole
    words), else 0.0; extra words around it are allowed."""
    g = f" {normalize(got)} "
    return max((1.0 if normalize(e) and f" {normalize(e)} " in g else 0.0) for e in _alternatives(expected))


def _f1(g: list[str], e: list[str]) -> float:
    if not g or not e:
        return 1.0 if g == e else 0.0
    common = Counter(g) & Counter(e)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(g), same / len(e)
    return 2 * precision * recall / (precision + recall)


def _alternatives(expected: Any) -> list[Any]:
    if isinstance(expected, (list, tuple)) and expected:
        return list(expected)
    return [expected]


def _as_text(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, float)):
        return str(x)
    return json.dumps(x, ensure_ascii=False, sort_keys=True)
