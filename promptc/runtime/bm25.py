"""BM25 scores over an in-memory list of texts (bm25s), with the index cached.

    scores("who wrote it", docs, stopwords="en") -> one float per document

The index of a list of documents is built on first use and kept in a small LRU keyed by
the documents' contents (and the stopword setting), so retrieving from the same corpus for
every sample, hop or call indexes it once per process. Used by `std.retrieval` (English
stopwords removed) and by per-call demo selection (promptc.runtime.nearest, none removed).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)

CACHE_SIZE = 16
_indexes: "OrderedDict[str, Any]" = OrderedDict()
_lock = threading.Lock()


def scores(query: str, docs: list[str], *, stopwords: str | None = "en") -> list[float]:
    """The BM25 score of every document for `query` (0.0 for all when nothing matches)."""
    import bm25s

    index = _index(docs, stopwords)
    if index is None:
        return [0.0] * len(docs)
    retriever, vocab = index
    toks = bm25s.tokenize([query], stopwords=stopwords, return_ids=False, show_progress=False)[0]
    toks = [t for t in toks if t in vocab]
    if not toks:
        return [0.0] * len(docs)
    return [float(s) for s in retriever.get_scores(toks)]


def _index(docs: list[str], stopwords: str | None):
    key = hashlib.sha256((str(stopwords) + "\x01" + "\x00".join(docs)).encode("utf-8")).hexdigest()
    with _lock:
        if key in _indexes:
            _indexes.move_to_end(key)
            return _indexes[key]
    import bm25s

    tokens = bm25s.tokenize(docs, stopwords=stopwords, show_progress=False)
    vocab = {t for t in tokens.vocab if t}
    index = None
    if vocab:
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        index = (retriever, vocab)
    else:
        log.debug("corpus of %d documents has no indexable words", len(docs))
    with _lock:
        _indexes[key] = index
        _indexes.move_to_end(key)
        while len(_indexes) > CACHE_SIZE:
            _indexes.popitem(last=False)
    return index


__all__ = ["scores"]
