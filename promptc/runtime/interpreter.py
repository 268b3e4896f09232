"""The interpreter: runs a compiled program's forward nodes and its backward program.

    traces = await forward(program, batch, engine, concurrency=8)

Samples run concurrently under one `asyncio.Semaphore(concurrency)` (engines serialize
what must be serialized, e.g. the in-process local model, themselves). Inside a sample the
nodes run in program order, which is topological. As torch.fx's `Interpreter`: there is a
single dispatch point, `Interpreter.dispatch`, which calls the handler `op_<op>` found on
the instance (a new behaviour is a subclass overriding one handler), and every handler
reads its arguments through one hook, `Interpreter.fetch`.

The backward program (the gradient pass's `GradNode`s) is run by a subclass that lives
with the training code, `promptc.optim.backward.Backward`: this module serves compiled
workflows and imports nothing of the compiler or of training.

Per node the trace keeps a `NodeRecord`: value, executed flag, error, seconds, tokens,
and for `llm` nodes the rendered messages and the raw answer text.

Errors are values, per sample:
- a failed model call, an answer that does not parse into the declared type, an
  exception inside a functional node, a missing input: the node's record gets `error`
  and its value is None;
- a node that reads a value whose node failed is skipped with error "upstream error";
- `Trace.error` is the first error, as "NODE: message"; `Trace.output` is None then.
A node whose `guard` is false (a loop step after `break`) is recorded as not executed.
`select(c, a, b)` reads only the branch it picks, and `guard(alive, stop)` reads `stop`
only while `alive`, so a failure in a step that did not run does not poison the sample.

A program that is not runnable (a `loop` node left, an unknown op, a function that cannot
be bound) raises `ProgramError` before any sample runs: that is a wrong program, not a
failed sample.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence

from promptc.bind import artifact_root, bind_program
from promptc.ir import OPS, GradNode, Node, Program
from promptc.runtime.parse import coerce, parse_answer
from promptc.runtime.records import CallResult, NodeRecord, Trace
from promptc.runtime.render import build_request, format_value
from promptc.runtime.sync import run_sync

log = logging.getLogger(__name__)

UPSTREAM = "upstream error"


class ProgramError(Exception):
    """The program cannot run at all (not unrolled, unbound function, unknown op)."""


class _Upstream(Exception):
    """Raised by `Interpreter.fetch` when the value read belongs to a node that failed."""


class _NodeError(Exception):
    """A sample error raised by a handler: recorded on the node, not propagated."""


class Frame:
    """The state of one sample: values and errors by node name, and the records so far.
    `extra` is what the running node adds to its record (an llm: messages, tokens, raw)."""

    def __init__(self, inputs: dict[str, Any]):
        self.inputs = inputs
        self.values: dict[str, Any] = {}
        self.failed: set[str] = set()
        self.records: list[NodeRecord] = []
        self.first_error: str | None = None
        self.extra: dict[str, Any] = {}


class Interpreter:
    """Runs one program's forward nodes (`run`).

    `functions` are the bound callables (None: bound now, from the program's `use`s and
    `search_dirs`); an interpreter that runs no forward node passes {}.
    """

    def __init__(
        self,
        program: Program,
        engine: Any,
        *,
        phase: str = "forward",
        search_dirs: Iterable[str | Path] = (),
        functions: dict[str, Callable[..., Any]] | None = None,
    ):
        self.program = program
        self.engine = engine
        self.phase = phase
        self.trainable = {p.name for p in program.trainable()}
        self.functions = bind_functions(program, search_dirs) if functions is None else functions
        for node in program.nodes:
            if node.op not in RUNNABLE:
                if node.op == "loop":
                    raise ProgramError(f"node {node.name!r} is a loop: the program was not unrolled")
                raise ProgramError(f"node {node.name!r} has unknown op {node.op!r}")

    # -- the walks ---------------------------------------------------------------
    async def run(self, inputs: dict[str, Any]) -> Trace:
        """One sample through the forward program."""
        frame = Frame(dict(inputs))
        for node in self.program.nodes:
            await self.run_node(node, frame)
        out_name = self.program.workflow.output
        output = None if out_name in frame.failed else frame.values.get(out_name)
        return Trace(
            inputs=tuple(frame.inputs.items()),
            records=tuple(frame.records),
            output=output,
            error=frame.first_error,
        )

    async def run_node(self, node: Node, frame: Frame) -> None:
        """A forward node: its guard, its handler, its record."""
        start = time.perf_counter()
        frame.extra = {}
        try:
            if node.guard is not None and not self.fetch(node.guard, frame):
                frame.values[node.name] = None
                frame.records.append(NodeRecord(name=node.name, executed=False))
                return
            value = await self.dispatch(node, frame)
        except _Upstream:
            self._fail(node, frame, UPSTREAM, start)
            return
        except _NodeError as e:
            self._fail(node, frame, str(e), start)
            return
        frame.values[node.name] = value
        frame.records.append(NodeRecord(name=node.name, value=value, seconds=time.perf_counter() - start, **frame.extra))

    def dispatch(self, node: Node | GradNode, frame: Frame) -> Awaitable[Any]:
        """The single dispatch point: the handler `op_<node.op>`, looked up on the instance,
        so a subclass that overrides one handler (or adds ops) changes that op only."""
        return getattr(self, "op_" + node.op)(node, frame)

    def fetch(self, name: str, frame: Frame) -> Any:
        """The one argument-fetch hook: the value of `name` in this sample."""
        if name in frame.failed:
            raise _Upstream(name)
        return frame.values.get(name)

    def _fail(self, node: Node, frame: Frame, error: str, start: float) -> None:
        frame.failed.add(node.name)
        frame.values[node.name] = None
        frame.records.append(
            NodeRecord(name=node.name, error=error, seconds=time.perf_counter() - start, **frame.extra)
        )
        if frame.first_error is None:  # nodes run in order: the first error is the root cause
            frame.first_error = f"{node.name}: {error}"

    # -- forward handlers, one per op --------------------------------------------------
    async def op_input(self, node: Node, frame: Frame) -> Any:
        name = node.target
        if name not in frame.inputs:
            raise _NodeError(f"missing input '{name}'")
        value = frame.inputs[name]
        if node.type is None:
            return value
        value, err = coerce(value, node.type)
        if err:
            raise _NodeError(f"input '{name}': {err}")
        return value

    async def op_const(self, node: Node, frame: Frame) -> Any:
        return node.target

    async def op_llm(self, node: Node, frame: Frame) -> Any:
        llm = self.program.llm(node.target)
        args = {pname: self.fetch(a, frame) for (pname, _), a in zip(llm.params, node.args)}
        try:
            req = build_request(self.program, llm, args, phase=self.phase)
        except ValueError as e:  # a bad PROMPTC_<MODEL>_<OPTION> override
            raise _NodeError(f"model '{llm.model}': {e}") from None
        extra = frame.extra
        extra["messages"] = req.messages
        try:
            result: CallResult = await self.engine.call(req)
        except Exception as e:  # engines must not raise; one that does fails the sample only
            raise _NodeError(f"model call failed: engine raised {type(e).__name__}: {e}") from None
        extra["prompt_tokens"] = result.prompt_tokens
        extra["completion_tokens"] = result.completion_tokens
        extra["raw"] = result.text
        if result.error is not None:
            raise _NodeError(f"model call failed: {result.error}")
        value, err = parse_answer(result.text, llm.returns)
        if err:
            raise _NodeError(err)
        return value

    async def op_call(self, node: Node, frame: Frame) -> Any:
        fn = self.functions[node.target]
        args = [self.fetch(a, frame) for a in node.args]
        try:
            value = fn(*args)
            if inspect.isawaitable(value):
                value = await value
        except Exception as e:  # the user's function failed on this sample: a sample error
            raise _NodeError(f"{node.target}() raised {type(e).__name__}: {e}") from None
        return value

    async def op_field(self, node: Node, frame: Frame) -> Any:
        rec = self.fetch(node.args[0], frame)
        if isinstance(rec, dict) and node.target in rec:
            return rec[node.target]
        raise _NodeError(f"no field '{node.target}' in {_kind(rec)}")

    async def op_index(self, node: Node, frame: Frame) -> Any:
        seq = self.fetch(node.args[0], frame)
        try:
            return seq[node.target]
        except (IndexError, KeyError, TypeError):
            raise _NodeError(f"index {node.target} out of range for {_kind(seq)}") from None

    async def op_list(self, node: Node, frame: Frame) -> Any:
        return [self.fetch(a, frame) for a in node.args]

    async def op_prim(self, node: Node, frame: Frame) -> Any:
        op = node.target
        if op == "and":  # short-circuit, like the language reads
            return bool(self.fetch(node.args[0], frame)) and bool(self.fetch(node.args[1], frame))
        if op == "or":
            return bool(self.fetch(node.args[0], frame)) or bool(self.fetch(node.args[1], frame))
        vals = [self.fetch(a, frame) for a in node.args]
        fn = PRIM_OPS.get(op)
        if fn is None:
            raise ProgramError(f"unknown primitive {op!r}")
        try:
            return fn(*vals)
        except TypeError as e:
            raise _NodeError(f"{op}: {e}") from None

    async def op_guard(self, node: Node, frame: Frame) -> Any:
        alive = bool(self.fetch(node.args[0], frame))
        return alive and not self.fetch(node.args[1], frame)

    async def op_select(self, node: Node, frame: Frame) -> Any:
        cond, if_true, if_false = node.args
        return self.fetch(if_true, frame) if self.fetch(cond, frame) else self.fetch(if_false, frame)


RUNNABLE = frozenset(OPS) - {"loop"}


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):
        return f"{a if isinstance(a, str) else _text(a)}{b if isinstance(b, str) else _text(b)}"
    return a + b


def _text(v: Any) -> str:
    return format_value(v)


PRIM_OPS: dict[str, Callable[..., Any]] = {
    "eq": lambda a, b: _eq(a, b),
    "ne": lambda a, b: not _eq(a, b),
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not a,
    "add": _add,
    "len": len,
}


def _eq(a: Any, b: Any) -> bool:
    return a == b


def _kind(v: Any) -> str:
    if v is None:
        return "no value"
    return {dict: "a record", list: "a list", str: "a text"}.get(type(v), type(v).__name__)


assert all(hasattr(Interpreter, "op_" + op) for op in RUNNABLE), "every op has a handler"


def bind_functions(program: Program, search_dirs: Iterable[str | Path] = ()) -> dict[str, Callable[..., Any]]:
    """The program's functions as callables, from its `promptc.bind.FunctionTable` (the
    search path and the trust rule are `promptc.bind`'s). For an untrusted artifact (an
    `ArtifactRoot` among `search_dirs`) only the functions the program calls are bound;
    a called function that does not bind is a `ProgramError`."""
    search_dirs = tuple(search_dirs)
    root = artifact_root(search_dirs)
    used = program.called()
    table = bind_program(program, search_dirs, only=used if root is not None and not root.trusted else None)
    for fn in program.functions:
        if fn.name in used and fn.name in table.errors:
            raise ProgramError(table.errors[fn.name])
    return table.callables()


async def forward(
    program: Program,
    batch: Sequence[dict[str, Any]],
    engine: Any,
    *,
    concurrency: int = 8,
    phase: str = "forward",
    search_dirs: Iterable[str | Path] = (),
    progress: Callable[[int, int], None] | None = None,
    on_trace: Callable[[int, Trace], None] | None = None,
) -> list[Trace]:
    """Run `program` on every sample of `batch`; one `Trace` per sample, in batch order.
    `on_trace(index, trace)` as each sample finishes, then `progress(done, total)`."""
    interp = Interpreter(program, engine, phase=phase, search_dirs=search_dirs)
    sem = asyncio.Semaphore(max(1, int(concurrency)))
    total = len(batch)
    done = 0

    async def one(i: int, inputs: dict[str, Any]) -> Trace:
        nonlocal done
        async with sem:
            trace = await interp.run(inputs)
        done += 1
        if on_trace is not None:
            on_trace(i, trace)
        if progress is not None:
            progress(done, total)
        return trace

    return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(batch))))


def run_forward(
    program: Program,
    batch: Sequence[dict[str, Any]],
    engine: Any,
    **kw: Any,
) -> list[Trace]:
    """Synchronous `forward`, for scripts and tests. Inside a running event loop (a
    notebook) it runs on a fresh loop in a worker thread."""
    return run_sync(forward(program, batch, engine, **kw))


__all__ = ["forward", "run_forward", "Interpreter", "Frame", "ProgramError", "bind_functions", "UPSTREAM"]
