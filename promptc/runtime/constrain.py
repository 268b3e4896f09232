"""Constrained decoding for the embedded model: GBNF grammars for labels and JSON schemas.

- `choices` (an enum-like output) become a grammar whose only sentences are the labels,
  so a 135M model cannot answer anything else;
- a JSON schema (a record output) is converted with llama-cpp's own JSON-schema converter
  (its whitespace rule is a single optional space, so the model cannot pad an answer with
  newlines up to max_tokens), after `bounded` gave every free string a maxLength.

llama-cpp-python 0.3.36's LlamaGrammar is the GBNF text, which llama.cpp parses when it
sets up each call's sampler (sub-millisecond for these grammars; the per-token grammar
check over the vocabulary is the real cost). `Grammars` builds each one once per model.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

GRAMMAR_CACHE_SIZE = 64


def choices_grammar(choices: tuple[str, ...] | list[str]) -> str:
    """GBNF whose language is exactly the given labels."""
    def lit(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return "root ::= " + " | ".join(lit(c) for c in choices) + "\n"


def schema_grammar(schema: dict) -> str:
    """GBNF for a JSON schema, via llama-cpp's converter (compact: one optional space)."""
    from llama_cpp import llama_grammar

    return llama_grammar.json_schema_to_gbnf(json.dumps(schema))


MAX_STRING = 900  # the longest maxLength a string gets (see `bounded`)


def bounded(schema: dict, max_tokens: int) -> dict:
    """`schema` with a `maxLength` on every free string that has none, so that the JSON the
    grammar allows always closes within `max_tokens` (about three characters a token,
    shared by the strings; a third of the budget is left for the keys and punctuation).

    A small model under a JSON grammar otherwise keeps writing one string until the token
    limit cuts the object open, and the answer cannot be parsed.
    """
    strings: list[dict] = []

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
                strings.append(out)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(schema)
    if strings:
        # llama.cpp refuses a JSON string rule repeated more than 1,000 times ("exceeds sane
        # defaults") and the sampler is then NULL, which kills the process: stay below it
        per = min(MAX_STRING, max(16, (2 * max_tokens) // len(strings)))
        for st in strings:
            st["maxLength"] = per
    return out


def schema_of(response_format: dict | None) -> dict | None:
    """Accept a bare JSON schema or an OpenAI-style response_format."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        return response_format["json_schema"].get("schema") or {}
    if kind == "json_object":
        return response_format.get("schema") or {}
    return response_format


class Grammars:
    """LlamaGrammar per label set or JSON schema, built once, least recently used dropped
    past `GRAMMAR_CACHE_SIZE`; shared by a model's instances (a LlamaGrammar is its GBNF
    text, parsed by llama.cpp when each call sets up its sampler)."""

    def __init__(self) -> None:
        self._table: OrderedDict[tuple[str, Any], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.built = 0  # how many grammars were built (a cache miss each)

    def get(self, *, choices: tuple[str, ...] = (), schema: dict | None = None) -> Any:
        import llama_cpp

        if choices:
            key: tuple[str, Any] = ("choices", tuple(choices))
        else:
            key = ("schema", json.dumps(schema, sort_keys=True, separators=(",", ":")))
        with self._lock:
            g = self._table.get(key)
            if g is not None:
                self._table.move_to_end(key)
                return g
            text = choices_grammar(choices) if choices else schema_grammar(schema or {})
            g = llama_cpp.LlamaGrammar.from_string(text, verbose=False)
            self.built += 1
            self._table[key] = g
            while len(self._table) > GRAMMAR_CACHE_SIZE:
                self._table.popitem(last=False)
            return g


__all__ = ["GRAMMAR_CACHE_SIZE", "MAX_STRING", "Grammars", "bounded", "choices_grammar", "schema_grammar", "schema_of"]
