"""`std.agents`: the tools of a ReAct agent over a corpus given as data.

`act` is the single dispatch point a workflow's loop calls with the action and argument
the model chose; `search` and `lookup` are the tools. Tools never raise on a bad action:
they answer with a text that tells the agent what went wrong, as a real tool would.
"""

from __future__ import annotations

import re

from promptc.stdlib.retrieval import retrieve

__all__ = ["search", "lookup", "act"]

ACTIONS = ("search", "lookup", "finish")


def search(query: str, corpus: list[str]) -> str:
    """Returns the single passage of `corpus` most relevant to `query` by BM25 (word
    overlap, stopwords ignored), or "No result" for an empty corpus. A wrong passage means
    the query lacked the distinguishing words of the one needed."""
    hits = retrieve(query, corpus, 1)
    return hits[0] if hits else "No result"


def lookup(term: str, corpus: list[str]) -> str:
    """Returns the first sentence in `corpus` (documents in order) that contains `term`
    (case-insensitive), or "No result" when none does. The term must appear verbatim."""
    needle = str(term).strip().lower()
    if not needle:
        return "No result"
    for doc in corpus:
        for sent in re.split(r"(?<=[.!?])\s+", str(doc)):
            if needle in sent.lower():
                return sent.strip()
    return "No result"


def act(action: str, arg: str, corpus: list[str]) -> str:
    """Runs the agent's chosen action: "search" returns search(arg, corpus), "lookup"
    returns lookup(arg, corpus), "finish" returns `arg` unchanged (the final answer).
    The action name is matched case-insensitively; any other action returns a text
    saying it is unknown and listing the valid ones."""
    name = str(action).strip().lower().strip(".:[]()\"'")
    if name == "search":
        return search(arg, corpus)
    if name == "lookup":
        return lookup(arg, corpus)
    if name == "finish":
        return str(arg)
    return f"Unknown action {str(action).strip()!r}; valid actions are: search, lookup, finish."
