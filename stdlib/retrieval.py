"""`std.retrieval`: BM25 retrieval over a corpus given as data (bm25s, in memory).

The index of a corpus is built on first use and kept in a small LRU keyed by the corpus
contents (promptc.runtime.bm25), so a workflow that retrieves from the same corpus for
every sample or every hop indexes it once per process.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["retrieve", "passages"]

log = logging.getLogger(__name__)


def retrieve(query: str, corpus: list[str], k: int) -> list[str]:
    """Ranks the documents of `corpus` by BM25 relevance to `query` (lowercased words,
    English stopwords removed, no stemming) and returns the `k` best, most relevant first
    (fewer when the corpus is smaller). Only the words of the query matter: a wrong
    result means the query lacked the distinguishing words (names, titles, key terms) of
    the needed document."""
    docs = [str(d) for d in corpus]
    if not docs or int(k) <= 0:
        return []
    scores = _scores(str(query), docs)
    order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
    return [docs[i] for i in order[: int(k)]]


def passages(context: Any) -> list[str]:
    """Turns a HotpotQA-style context — a list of [title, [sentence, ...]] pairs (or
    {"title": [...], "sentences": [...]}) — into one "title: sentences joined" text per
    document; a list of texts is returned unchanged. The text of each passage is exactly
    the source sentences."""
    if context is None:
        return []
    if isinstance(context, dict) and "title" in context and "sentences" in context:
        context = list(zip(context["title"], context["sentences"]))
    out: list[str] = []
    for item in context:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            title = item.get("title", "")
            sents = item.get("sentences", item.get("text", ""))
            out.append(_passage(title, sents))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            out.append(_passage(item[0], item[1]))
        else:
            out.append(str(item))
    return out


def _passage(title: Any, sents: Any) -> str:
    body = "".join(str(s) for s in sents) if isinstance(sents, (list, tuple)) else str(sents)
    return f"{title}: {body.strip()}" if title else body.strip()


def _scores(query: str, docs: list[str]) -> list[float]:
    from promptc.runtime.bm25 import scores

    return scores(query, docs, stopwords="en")
