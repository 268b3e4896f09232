"""Embedding: `promptc.load(path)` and the `Workflow` object that serves a program.

    import promptc
    wf = promptc.load("trec.pfc")
    wf(question="Who wrote Hamlet?")            # -> "HUM"; raises PromptcRunError on failure
    await wf.acall(question="Who wrote Hamlet?")
    results = wf.batch([{"question": q} for q in qs], concurrency=8)
    [r.output if r.ok else r.error for r in results]   # batch: errors are values
    wf.params["instruction"]                    # the (trained) prompt texts and demos

Serving imports no training code (`promptc.optim`) and no compiler (`promptc.frontend`,
`promptc.passes`): a `.pfc` is read by `promptc.artifact`, run by the interpreter, and the
engine is made on first use (with the on-disk cache under `.promptc/cache` unless told
otherwise). `promptc.load` (promptc.api) also accepts a `.pflow` source, which it compiles
first; this module's `load` reads artifacts only.

The workflow owns one private event loop on a daemon thread and runs every call on it,
so the engine (its connections, semaphores, the local model's worker) always lives on
one loop: `wf(...)` works with or without a running event loop (scripts, notebooks),
and `acall` awaits the same loop's work from the caller's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from pathlib import Path
from types import MappingProxyType
from typing import Any, Coroutine, Iterable, Mapping, Sequence

from attrs import frozen

from promptc.artifact import load_program, save as save_program
from promptc.bind import ArtifactRoot, confine_calls
from promptc.ir import Program
from promptc.runtime.interpreter import Interpreter
from promptc.runtime.records import Trace
from promptc.runtime.sync import SETTLE_SECONDS, settle_litellm


class PromptcRunError(Exception):
    """A sample failed (a model call, an unparsable answer, a functional node's exception).

    `.error` is the first node error ("NODE: message"); `.trace` the full trace.
    """

    def __init__(self, trace: Trace):
        super().__init__(f"workflow failed: {trace.error}")
        self.trace = trace
        self.error = trace.error


@frozen
class Result:
    """One sample of `Workflow.batch`: the output, or the error (never an exception)."""

    output: Any
    error: str | None
    trace: Trace

    @property
    def ok(self) -> bool:
        return self.error is None


class Workflow:
    """A compiled program bound to an engine, callable like a function of its inputs."""

    def __init__(
        self,
        program: Program,
        *,
        engine: Any = None,
        cache_dir: str | Path | None = None,
        no_cache: bool = False,
        search_dirs: Iterable[str | Path] = (),
        concurrency: int = 8,
    ):
        self._program = program
        self._engine = engine
        self._cache_dir = cache_dir
        self._no_cache = no_cache
        self._search_dirs = tuple(search_dirs)
        self._concurrency = concurrency
        self._interp: Interpreter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._params = MappingProxyType({p.name: _param_value(p) for p in program.params})

    # -- what it is -------------------------------------------------------------
    @property
    def program(self) -> Program:
        return self._program

    @property
    def search_dirs(self) -> tuple[Any, ...]:
        """Where the program's Python functions are looked up (`promptc.bind`)."""
        return self._search_dirs

    def save(self, path: str | Path) -> Path:
        """Write the program, params included, as a `.pfc` artifact; `promptc.load(path)`
        serves it again (its functions from the artifact's folder, see `promptc.bind`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_program(self._program, path, {})
        return path

    @property
    def params(self) -> Mapping[str, Any]:
        """name -> prompt text, or tuple of demos ({"inputs": {...}, "output": ...}); read-only."""
        return self._params

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self._program.workflow.inputs)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from promptc.runtime.engine import make_engine

            kw: dict[str, Any] = {"no_cache": self._no_cache}
            if self._cache_dir is not None:
                kw["cache_dir"] = str(self._cache_dir)
            self._engine = make_engine(**kw)
        return self._engine

    @property
    def accounting(self) -> Any:
        return self.engine.accounting

    def __repr__(self) -> str:
        args = ", ".join(f"{n}: {t}" for n, t in self._program.workflow.inputs)
        return f"<promptc.Workflow {self._program.workflow.name}({args}) -> {self._program.workflow.returns}>"

    # -- calling ----------------------------------------------------------------
    def __call__(self, **inputs: Any) -> Any:
        """Run one sample synchronously; the output, or `PromptcRunError`."""
        return _output(self.trace(**inputs))

    async def acall(self, **inputs: Any) -> Any:
        """Run one sample; the output, or `PromptcRunError`."""
        self._check(inputs)
        interp = self._interpreter()
        fut = asyncio.run_coroutine_threadsafe(interp.run(dict(inputs)), self._ensure_loop())
        return _output(await asyncio.wrap_future(fut))

    def trace(self, **inputs: Any) -> Trace:
        """Run one sample synchronously and return its full `Trace` (errors as values)."""
        self._check(inputs)
        return self._submit(self._interpreter().run(dict(inputs)))

    def batch(self, samples: Sequence[Mapping[str, Any]], concurrency: int | None = None) -> list[Result]:
        """Run many samples concurrently. Errors are values: each `Result` has `.output`
        or `.error` (a missing or unknown input is an error of that sample too)."""
        batch = [dict(s) for s in samples]
        traces = self._submit(_rows(self._interpreter(), batch, concurrency or self._concurrency))
        return [Result(output=t.output, error=t.error, trace=t) for t in traces]

    def close(self) -> None:
        """Stop the private event loop: what litellm's logging worker queued on it may
        finish (a few seconds at most), other pending tasks are cancelled and awaited, then
        the loop is closed. The workflow stays usable: the next call starts a new loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_wind_down(), loop).result(timeout=SETTLE_SECONDS + 10)
        except Exception as e:  # shutting down: nothing left to report to
            logging.getLogger(__name__).debug("winding down the workflow's loop failed: %s", e)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> "Workflow":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals --------------------------------------------------------------
    def _check(self, inputs: Mapping[str, Any]) -> None:
        names = self.inputs
        unknown = [k for k in inputs if k not in names]
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            parts = []
            if missing:
                parts.append("missing input" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
            if unknown:
                parts.append("unknown input" + ("s " if len(unknown) > 1 else " ") + ", ".join(unknown))
            raise TypeError(f"{self._program.workflow.name}(): " + "; ".join(parts))

    def _interpreter(self) -> Interpreter:
        # Built in the caller's thread: imports (litellm, user modules) never happen on
        # the loop thread, concurrently with the caller.
        if self._interp is None:
            self._interp = _RowInterpreter(self._program, self.engine, search_dirs=self._search_dirs)
        return self._interp

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="promptc-workflow", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                _OPEN.add(self)
            return self._loop

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result()


def load(
    path: str | Path,
    *,
    cache_dir: str | Path | None = None,
    no_cache: bool = False,
    engine: Any = None,
    concurrency: int = 8,
    trust_code: bool = False,
) -> Workflow:
    """Load a compiled `.pfc` and return a `Workflow`.

    `cache_dir` defaults to `.promptc/cache` in the working directory; `no_cache=True`
    bypasses the cache; `engine` replaces the default engine altogether.

    A `.pfc` may import user code only from its own folder, by relative path, and only
    for the functions it calls (the trust rule, `promptc.bind`); a `.pfc` naming any
    other file raises `BindError` here, before anything runs, unless `trust_code=True`.
    """
    path = Path(path)
    program = load_program(str(path))
    root = ArtifactRoot(path.resolve().parent, trusted=trust_code)
    confine_calls(program, root)  # refused before anything runs
    search_dirs: tuple[Any, ...] = (root,)
    return Workflow(
        program,
        engine=engine,
        cache_dir=cache_dir,
        no_cache=no_cache,
        search_dirs=search_dirs,
        concurrency=concurrency,
    )


class _RowInterpreter(Interpreter):
    """The interpreter of a served workflow: a node that raises what no handler expects
    (a bug, or a program no check foresaw) fails its own sample with an error naming the
    node, like any node error, and the other samples of a batch run on."""

    async def run_node(self, node: Any, frame: Any) -> None:
        start = time.perf_counter()
        try:
            await super().run_node(node, frame)
        except Exception as e:
            logging.getLogger(__name__).debug("node %s raised", node.name, exc_info=True)
            self._fail(node, frame, _internal(e), start)


async def _rows(interp: Interpreter, batch: list[dict[str, Any]], concurrency: int) -> list[Trace]:
    """Every sample of `batch` through `interp`, `concurrency` at a time, in batch order;
    a sample whose run raises (outside any node) is a failed sample, not a failed batch."""
    sem = asyncio.Semaphore(max(1, int(concurrency)))

    async def one(inputs: dict[str, Any]) -> Trace:
        async with sem:
            try:
                return await interp.run(inputs)
            except Exception as e:
                logging.getLogger(__name__).debug("a sample raised", exc_info=True)
                return Trace(inputs=tuple(inputs.items()), records=(), error=_internal(e))

    return list(await asyncio.gather(*(one(s) for s in batch)))


def _internal(e: Exception) -> str:
    """One line for an exception no handler expected."""
    text = " ".join(str(e).split())
    return f"internal error ({type(e).__name__}: {text[:300]})"


# Workflows whose loop thread is running. At interpreter exit they are closed while
# threads still run: a daemon loop thread frozen while it holds the import lock (its
# tasks go on after a call returns) would otherwise leave the finalizers that import
# (litellm's HTTP handlers do) waiting for it forever.
_OPEN: "weakref.WeakSet[Workflow]" = weakref.WeakSet()


@atexit.register
def _close_open_workflows() -> None:
    for wf in list(_OPEN):
        wf.close()


async def _wind_down() -> None:
    """On the loop that is closing: what `asyncio.run` does at its end (other tasks
    cancelled, the default executor shut down), after litellm's logging has settled."""
    await settle_litellm()
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_default_executor()


def _output(trace: Trace) -> Any:
    if not trace.ok:
        raise PromptcRunError(trace)
    return trace.output


def _param_value(p: Any) -> Any:
    if p.kind == "demos":
        return tuple({"inputs": dict(d.inputs), "output": d.output} for d in p.demos)
    return p.text


__all__ = ["load", "Workflow", "Result", "PromptcRunError"]
