"""`std.text`: small text functions for cleaning up model answers.

Each docstring says what the function does to its input: the backward engine reads it to
explain how feedback on the output relates to the text that went in.
"""

from __future__ import annotations

import re

__all__ = ["strip", "lower", "first_word", "first_line", "concat", "join", "label"]


def strip(s: str) -> str:
    """Removes leading and trailing whitespace from the text; the words are unchanged."""
    return str(s).strip()


def lower(s: str) -> str:
    """Lowercases the whole text; nothing else changes."""
    return str(s).lower()


def first_word(s: str) -> str:
    """Keeps only the first whitespace-separated word of the text, without surrounding
    punctuation (for "HUM. Because..." it returns "HUM"); everything after it is dropped,
    so an answer must start with the wanted word."""
    for tok in str(s).split():
        word = tok.strip(".,;:!?\"'()[]{}*`")
        if word:
            return word
    return ""


def first_line(s: str) -> str:
    """Keeps only the first non-empty line of the text, stripped; later lines are dropped,
    so the answer must be on the first line."""
    for line in str(s).splitlines():
        if line.strip():
            return line.strip()
    return ""


def concat(a: str, b: str) -> str:
    """Concatenates two texts, `a` then `b`, with nothing in between."""
    return f"{a}{b}"


def join(items: list[str], sep: str) -> str:
    """Joins the list of texts into one text, with `sep` between consecutive items."""
    return str(sep).join(str(x) for x in items)


def label(s: str, labels: list[str]) -> str:
    """Finds which of `labels` the text mentions first (whole word, case-insensitive) and
    returns that label exactly as written in `labels`; when none is mentioned, returns the
    text stripped, unchanged. A wrong result means the text named the wrong label first or
    named none."""
    text = str(s)
    best: tuple[int, int, str] | None = None
    for lab in labels:
        m = re.search(r"(?<![\w])" + re.escape(str(lab)) + r"(?![\w])", text, re.IGNORECASE)
        if m is not None:
            key = (m.start(), -len(str(lab)), str(lab))
            if best is None or key < best:
                best = key
    return best[2] if best is not None else text.strip()
