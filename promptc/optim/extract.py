"""Getting a proposal out of an optimizer's reply, and refusing the ones that are not one.

Weak models answer in many shapes. `extract` accepts, in order: `<proposal>...</proposal>`
tags (an unclosed tag takes the rest of the reply), a JSON object with a "proposal" key
(bare or in a ```json fence), or a fenced block. With `plain_ok` (used on the retry) a
reply with none of these is taken whole. `check` then says why a candidate must be
rejected, or returns None: empty, unchanged, already rejected, too long, a `{placeholder}`
of the current value dropped, or the optimizer's own meta-prompt absorbed (its tags, its
section headers, or a large share of word 4-grams copied from its fixed wording).
"""

from __future__ import annotations

import re
from typing import Iterable

from promptc.stdlib.json import loads_tolerant

PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_TAG = re.compile(r"<proposal>(.*?)(?:</proposal>|$)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)(?:```|$)", re.S)
_META_TAGS = ("<proposal", "</proposal", "<current", "</current")


def placeholders(text: str) -> tuple[str, ...]:
    """The `{name}` placeholders of a prompt, in first-use order."""
    seen: dict[str, None] = {}
    for m in PLACEHOLDER.finditer(text):
        seen.setdefault(m.group(1), None)
    return tuple(seen)


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


def check(
    candidate: str,
    current: str,
    *,
    rejected: Iterable[str] = (),
    max_chars: int,
    meta_static: str = "",
    meta_headers: Iterable[str] = (),
    overlap: float = 0.3,
) -> str | None:
    """Why `candidate` must be rejected, or None if it may be evaluated."""
    if not candidate.strip():
        return "empty proposal"
    if _norm(candidate) == _norm(current):
        return "identical to the current value"
    if any(_norm(candidate) == _norm(r) for r in rejected):
        return "already rejected at this step"
    if len(candidate) > max_chars:
        return f"too long ({len(candidate)} > {max_chars} characters)"
    missing = [p for p in placeholders(current) if "{" + p + "}" not in candidate]
    if missing:
        return "dropped placeholder(s) " + ", ".join("{" + p + "}" for p in missing)
    low = candidate.lower()
    for tag in _META_TAGS:
        if tag in low:
            return f"contains the optimizer's tag {tag}>"
    headers = tuple(meta_headers)
    for line in candidate.splitlines():
        key = line.strip().lstrip("#").strip().rstrip(":").strip().lower()
        if key and any(key == h or (len(key) > 8 and h.startswith(key)) for h in headers):
            return f"contains the optimizer's section header {line.strip()!r}"
    if meta_static:
        own = _grams(candidate) - _grams(current)
        if len(own) >= 3:
            copied = len(own & _grams(meta_static))
            if copied / len(own) >= overlap:
                return f"copies the optimizer's instructions ({copied}/{len(own)} word 4-grams)"
    return None
