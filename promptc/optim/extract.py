"""Getting a proposal out of an optimizer's reply, and refusing the ones that are not one.

Weak models answer in many shapes. `extract` accepts, in order: `<proposal>...</proposal>`
tags (an unclosed tag takes the rest of the reply), a JSON object with a "proposal" key
(bare or in a ```json fence), or a fenced block. With `plain_ok` (used on the retry) a
reply with none of these is taken whole.

`check` then says why a candidate must be refused before it costs a validation call, as
a `Rejection(filter, reason)`, or returns None. The filters, in the order they run (their
names are `FILTERS`; the trainer counts rejections by name). What the text *is*
(code, a loop, a copy) is named before what it lost, so a degenerate reply is counted
under the filter that says what went wrong:

  empty                nothing but whitespace
  unchanged            the current value again (whitespace and case ignored)
  already-rejected     a value refused earlier at this step
  too-long             over the length limit
  code-shaped          a code fence, a JSON / Python dict or list literal, or text that is
                       mostly punctuation (less than half of its visible characters letters),
                       unless the current value is so too
  repetition           a sentence or line of 3+ words that occurs 3 times or more, or
                       duplicates making up half of the sentences, or a loop: a sequence
                       of up to 20 words said three times in a row (at least 8 words of
                       run; a parallel list such as "if the question asks for a person,
                       ...; if the question asks for a place, ..." is not one)
  meta-copy            the optimizer's own meta-prompt absorbed: its tags, a section
                       header, or too large a share of the proposal's new word 4-grams
                       (`overlap`, 0.3) from the templates' fixed wording or the rendered
                       loss lines it was shown (metric, score, input, expected, got); or a
                       feedback sentence (7+ words) pasted whole (90% of its 4-grams).
                       Feedback gets the looser rule because taking some of its wording
                       into the prompt is the point of the method; pasting the gradient
                       ("The instruction should ...") as the prompt is not.
  dropped-placeholder  a `{placeholder}` of the current value is missing
  dropped-label        an output label named in the current value is missing (`labels`:
                       the enum labels of the llm outputs the param feeds; whole word,
                       case-sensitive)

`propose` adds two names of its own: no-proposal (nothing could be extracted from the
reply) and call-failed (the optimizer call returned an error).
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from typing import Iterable

from attrs import frozen

from promptc import template as T
from promptc.runtime.jsontext import loads_tolerant

EMPTY = "empty"
UNCHANGED = "unchanged"
ALREADY_REJECTED = "already-rejected"
TOO_LONG = "too-long"
DROPPED_PLACEHOLDER = "dropped-placeholder"
DROPPED_LABEL = "dropped-label"
CODE_SHAPED = "code-shaped"
REPETITION = "repetition"
META_COPY = "meta-copy"
NO_PROPOSAL = "no-proposal"
CALL_FAILED = "call-failed"
FILTERS = (  # in the order `check` runs them, then the two of `propose`
    EMPTY, UNCHANGED, ALREADY_REJECTED, TOO_LONG, CODE_SHAPED, REPETITION, META_COPY,
    DROPPED_PLACEHOLDER, DROPPED_LABEL, NO_PROPOSAL, CALL_FAILED,
)

_TAG = re.compile(r"<proposal>(.*?)(?:</proposal>|$)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)(?:```|$)", re.S)
MAX_LOOP_PERIOD = 20  # the longest word sequence `repetition` looks for as a loop
_META_TAGS = ("<proposal", "</proposal", "<current", "</current")


@frozen
class Rejection:
    """Why a candidate was refused: `filter` is one of `FILTERS`, `reason` says it to a person."""

    filter: str
    reason: str

    def __attrs_post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter {self.filter!r}")

    def __str__(self) -> str:
        return self.reason


def placeholders(text: str) -> tuple[str, ...]:
    """The `{name}` placeholders of a prompt, in first-use order (any text is read: a
    stray brace in a proposal is text)."""
    return T.placeholders(text, strict=False)


def _from_json(text: str) -> str | None:
    data, _ = loads_tolerant(text)
    if isinstance(data, dict):
        for key in ("proposal", "new_value", "value", "prompt"):
            if isinstance(data.get(key), str):
                return data[key]
    return None


def extract(reply: str | None, *, plain_ok: bool = False) -> str | None:
    """The proposed value in an optimizer reply, or None when there is none."""
    if not reply or not reply.strip():
        return None
    m = _TAG.search(reply)
    if m and m.group(1).strip():
        return _clean(m.group(1))
    found = _from_json(reply)
    if found is not None and found.strip():
        return _clean(found)
    for m in _FENCE.finditer(reply):
        lang, body = m.group(1).lower(), m.group(2)
        if lang == "json":
            found = _from_json(body)
            if found and found.strip():
                return _clean(found)
            continue
        if body.strip():
            return _clean(body)
    if plain_ok:
        return _clean(reply)
    return None


def _clean(text: str) -> str:
    text = text.strip()
    # a model that echoes the label of the section ("New value:") keeps only the value
    text = re.sub(r"^(new value|proposal|new prompt)\s*:\s*", "", text, flags=re.I)
    return text.strip().strip('"').strip()


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def clip(text: str, max_chars: int) -> str:
    """`text` cut after its last full sentence that fits in `max_chars`.

    Weak optimizer models often write a good first paragraph and then keep going; keeping
    the sentences that fit is better than losing the proposal. When no sentence ends in
    the second half of the limit the text is returned whole (and `check` rejects it).
    """
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", head)]
    if ends and ends[-1] >= max_chars // 2:
        return head[: ends[-1]].rstrip()
    return text


def _sentences(text: str) -> list[str]:
    """Lines and sentences, normalized, of 3 words or more."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [n for n in (_norm(p).strip(" -*#") for p in parts) if len(n.split()) >= 3]


def repetition(text: str) -> str | None:
    """Why `text` is degenerate repetition, or None."""
    sents = _sentences(text)
    if sents:
        counts = Counter(sents)
        sent, most = counts.most_common(1)[0]
        if most >= 3:
            return f"the sentence {sent[:60]!r} occurs {most} times"
        repeated = sum(c - 1 for c in counts.values())
        if len(sents) >= 2 and repeated * 2 >= len(sents):
            return f"{repeated} of its {len(sents)} sentences are repeats"
    words = re.findall(r"[a-z0-9']+", text.lower())
    for period in range(1, MAX_LOOP_PERIOD + 1):
        run = 0
        for i in range(len(words) - period):
            run = run + 1 if words[i] == words[i + period] else 0
            if run >= max(2 * period, 8):
                unit = " ".join(words[i + 1 - run : i + 1 - run + period])
                return f"the words {unit!r} repeat in a loop"
    return None


def code_shaped(text: str) -> str | None:
    """Why `text` looks like code or data rather than a prompt, or None."""
    stripped = text.strip()
    if "```" in stripped:
        return "contains a code fence"
    bare = T.without_placeholders(stripped)
    if stripped[:1] in "{[" and stripped[-1:] in "}]" and bare.strip():
        for parse in (json.loads, ast.literal_eval):
            try:
                if isinstance(parse(stripped), (dict, list)):
                    return "is a JSON / dict or list literal"
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
    visible = [c for c in bare if not c.isspace()]
    if len(visible) >= 10 and sum(c.isalpha() for c in visible) < 0.5 * len(visible):
        return "is mostly punctuation and digits"
    return None


def _copied(own: set[tuple[str, ...]], source: str) -> int:
    return len(own & _grams(source)) if source else 0


def check(
    candidate: str,
    current: str,
    *,
    rejected: Iterable[str] = (),
    max_chars: int,
    meta_static: str = "",
    meta_headers: Iterable[str] = (),
    meta_shown: Iterable[str] = (),
    feedback: Iterable[str] = (),
    labels: Iterable[str] = (),
    overlap: float = 0.3,
) -> Rejection | None:
    """Why `candidate` must be refused (see the module doc), or None if it may be evaluated.

    meta_static: the meta-prompt templates' fixed wording; meta_headers: their section
    headers; meta_shown: the rendered loss lines the optimizer was shown; feedback: the
    gradient texts it was shown; labels: output labels the value must keep if it has them.
    """
    if not candidate.strip():
        return Rejection(EMPTY, "empty proposal")
    if _norm(candidate) == _norm(current):
        return Rejection(UNCHANGED, "identical to the current value")
    if any(_norm(candidate) == _norm(r) for r in rejected):
        return Rejection(ALREADY_REJECTED, "already rejected at this step")
    if len(candidate) > max_chars:
        return Rejection(TOO_LONG, f"too long ({len(candidate)} > {max_chars} characters)")
    why = code_shaped(candidate)
    if why and not code_shaped(current):  # a value that is code or data may stay so
        return Rejection(CODE_SHAPED, why)
    why = repetition(candidate)
    if why:
        return Rejection(REPETITION, why)
    low = candidate.lower()
    for tag in _META_TAGS:
        if tag in low:
            return Rejection(META_COPY, f"contains the optimizer's tag {tag}>")
    headers = tuple(meta_headers)
    for line in candidate.splitlines():
        key = line.strip().lstrip("#").strip().rstrip(":").strip().lower()
        if key and any(key == h or (len(key) > 8 and h.startswith(key)) for h in headers):
            return Rejection(META_COPY, f"contains the optimizer's section header {line.strip()!r}")
    own = _grams(candidate) - _grams(current)
    if len(own) >= 3:
        meta = " \n ".join([meta_static, *meta_shown])
        copied = _copied(own, meta)
        if meta.strip() and copied / len(own) >= overlap:
            return Rejection(META_COPY, f"copies the optimizer's meta-prompt ({copied}/{len(own)} word 4-grams)")
    for text in feedback:
        for sentence in _sentences(text):
            grams = _grams(sentence) - _grams(current)
            if len(grams) >= 4 and len(grams & own) >= 0.9 * len(grams):
                return Rejection(META_COPY, f"pastes a feedback sentence whole: {sentence[:60]!r}")
    missing = [p for p in placeholders(current) if "{" + p + "}" not in candidate]
    if missing:
        return Rejection(DROPPED_PLACEHOLDER, "dropped placeholder(s) " + ", ".join("{" + p + "}" for p in missing))
    dropped = [l for l in dict.fromkeys(labels) if _has_word(current, l) and not _has_word(candidate, l)]
    if dropped:
        return Rejection(DROPPED_LABEL, "dropped the output label(s) " + ", ".join(dropped))
    return None


def _has_word(text: str, word: str) -> bool:
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(word) + r"(?![A-Za-z0-9_])", text) is not None
