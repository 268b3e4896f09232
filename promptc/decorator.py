"""`@promptc.workflow`: a workflow written as a decorated Python function.

    import promptc
    from typing import Literal

    task = promptc.model("PROMPTC_TASK_MODEL", default="local/default")
    instruction = promptc.prompt("Classify the question.", trainable=True, role="the task")
    shots = promptc.demos(max=4, trainable=True)
    exact_match = promptc.use("std.metrics", "exact_match")

    @promptc.llm(via=task, system="{instruction}", demos=shots, user="Question: {question}")
    def classify(question: str) -> Literal["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]: ...

    @promptc.workflow(train=promptc.train(metric=exact_match, answer="label"))
    def trec(question: str) -> str:
        label = classify(question)
        return label

    trec.program            # the compiled Program (promptc.compile_workflow(trec) too)
    trec(question="...")    # runs it (promptc.runtime.workflow.Workflow)

This module is the user-facing API: the declaration functions and the decorator. How a
decorated function and its module's globals become a promptc AST is
`promptc.frontend.py_module` (see its docstring for the Python subset); compiling is the
compile driver's (`promptc.compiler`), running the runtime's.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from attrs import evolve

from promptc.artifact import load_program
from promptc.compiler import compile_decorated
from promptc.errors import CompileError
from promptc.frontend.py_module import (
    DecoratedFunction,
    DemosRef,
    FunctionRef,
    LlmRef,
    ModelRef,
    PromptRef,
    TrainRef,
    caller_span,
)
from promptc.ir import Program, check_model_option
from promptc.runtime.workflow import Workflow

__all__ = ["workflow", "llm", "prompt", "demos", "model", "use", "train", "compile_workflow", "WorkflowFunction"]


def model(
    env: str | None = None,
    default: str = "local/default",
    *,
    base_url: str | None = None,
    key_env: str | None = None,
    timeout: float | None = None,
    response_schema: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> ModelRef:
    """`model NAME = env(ENV, DEFAULT) { OPTION VALUE; ... }`; with `env=None`, `model NAME = DEFAULT`.

    The keyword arguments are the model options of the language (`MODEL_OPTIONS`); those
    left at None are not declared. `key_env` is the name of the variable holding the key.
    """
    span = caller_span()
    given = dict(
        base_url=base_url, key_env=key_env, timeout=timeout, response_schema=response_schema,
        temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
    )
    options = []
    for key, value in sorted(given.items()):
        if value is None:
            continue
        try:
            options.append((key, check_model_option(key, value)))
        except ValueError as e:
            raise CompileError(f"promptc.model(...): {e}", span) from None
    return ModelRef(env, default, span, tuple(options))


def prompt(text: str = "", *, trainable: bool = False, role: str = "") -> PromptRef:
    """`param NAME: prompt [trainable] ["role"] = TEXT` (the text is used verbatim)."""
    return PromptRef(text, trainable, role, caller_span())


def demos(max: int, *, trainable: bool = False, role: str = "") -> DemosRef:  # noqa: A002 - mirrors `demos(max = K)`
    """`param NAME: demos(max = K) [trainable] ["role"]`."""
    if not isinstance(max, int) or isinstance(max, bool) or max < 1:
        raise CompileError("promptc.demos(max=K) needs an int K >= 1", caller_span())
    return DemosRef(max, trainable, role, caller_span())


def use(module: str, *names: str) -> Any:
    """`use MODULE { a, b }`: one `FunctionRef` per name (a tuple when several).

    `module` is "std.<name>" or a path to a Python file, relative to the calling file.
    Assigning to another variable name aliases the function (`use m { a as b }`).
    """
    span = caller_span()
    if not names:
        raise CompileError("promptc.use(MODULE, NAME, ...) needs at least one function name", span)
    refs = tuple(FunctionRef(module, n, span) for n in names)
    return refs[0] if len(refs) == 1 else refs


def train(
    metric: FunctionRef,
    answer: str = "answer",
    teacher: ModelRef | None = None,
    backward: ModelRef | None = None,
    optimizer: ModelRef | None = None,
    supports: dict[str, str] | None = None,
) -> TrainRef:
    """The `train` block of a decorated workflow: `@promptc.workflow(train=promptc.train(...))`.

    `supports={"found": "supporting_titles"}` is `supports found in supporting_titles`: a
    variable of the workflow, and the dataset field it should hit (credit for the steps
    that compute it; docs/training.md)."""
    span = caller_span()
    pairs = tuple((supports or {}).items())
    if not all(isinstance(v, str) and isinstance(f, str) for v, f in pairs):
        raise CompileError('promptc.train(supports=...) needs {"variable": "dataset field", ...}', span)
    return TrainRef(metric, answer, teacher, backward, optimizer, span, pairs)


_ENTRY_KEYS = ("system", "user", "assistant", "demos")


def llm(via: ModelRef | None = None, **entries: Any) -> Callable[[Callable], LlmRef]:
    """`@promptc.llm(via=MODEL, system="...", demos=P, user="...")` on a function stub.

    The keyword order is the message order. For several messages of one role, pass
    `messages=[("system", "..."), ("demos", shots), ("user", "..."), ...]` instead.
    The function's annotations give the argument and output types; its body is ignored.
    """
    span = caller_span()
    if not isinstance(via, ModelRef):
        raise CompileError("@promptc.llm needs via=MODEL, a promptc.model(...)", span)
    if "messages" in entries:
        if len(entries) > 1:
            raise CompileError("@promptc.llm: give either messages=[...] or system=/user=/... keywords", span)
        items = [tuple(m) for m in entries["messages"]]
    else:
        items = list(entries.items())
    for role, value in items:
        if role not in _ENTRY_KEYS:
            raise CompileError(f"@promptc.llm: unknown entry '{role}' (expected one of {', '.join(_ENTRY_KEYS)})", span)
        if role == "demos" and not isinstance(value, DemosRef):
            raise CompileError("@promptc.llm: demos= must be a promptc.demos(...) param", span)
        if role != "demos" and not isinstance(value, str):
            raise CompileError(f"@promptc.llm: {role}= must be a template string", span)

    def wrap(fn: Callable) -> LlmRef:
        return LlmRef(fn, via, items)  # type: ignore[arg-type]

    return wrap


def workflow(fn: Callable | None = None, *, train: TrainRef | None = None) -> Any:  # noqa: F811 - the decorator's keyword
    """`@promptc.workflow` or `@promptc.workflow(train=promptc.train(...))`."""
    if fn is None:
        return lambda f: WorkflowFunction(f, train)
    return WorkflowFunction(fn, train)


def compile_workflow(fn: "WorkflowFunction") -> Any:
    """The compiled `Program` of a decorated workflow (same as `fn.program`)."""
    if not isinstance(fn, WorkflowFunction):
        raise TypeError(f"{fn!r} is not a @promptc.workflow function")
    return fn.program


class WorkflowFunction(DecoratedFunction):
    """A decorated workflow: `.program` (compiled on first use), `.module_ast`, and calling runs it."""

    def __init__(self, fn: Callable, train_ref: TrainRef | None):
        super().__init__(fn, train_ref)
        self._program = None
        self._runtime = None

    @property
    def program(self):
        if self._program is None:
            self._program = compile_decorated(self)
        return self._program

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        names = [n for n, _ in self.program.workflow.inputs]
        if len(args) > len(names):
            raise TypeError(f"{self.fn.__name__}() takes {len(names)} arguments, got {len(args)}")
        inputs = dict(zip(names, args))
        inputs.update(kwargs)
        if self._runtime is None:
            self._runtime = Workflow(self.program, search_dirs=(os.path.dirname(os.path.abspath(self.file)),))
        return self._runtime(**inputs)

    def load(
        self,
        path: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | None = None,
        no_cache: bool = False,
        engine: Any = None,
        concurrency: int = 8,
    ) -> Workflow:
        """This workflow with the trained params of the artifact at `path`, served with the
        functions of this module (the one the caller imported): the artifact is read as
        data only, and nothing is imported from its folder."""
        trained = load_program(str(path))
        program = with_params_of(self.program, trained, str(path))
        return Workflow(
            program,
            engine=engine,
            cache_dir=cache_dir,
            no_cache=no_cache,
            search_dirs=(os.path.dirname(os.path.abspath(self.file)),),
            concurrency=concurrency,
        )

    def __repr__(self) -> str:
        return f"<promptc.workflow {self.fn.__name__}>"


def with_params_of(program: Program, trained: Program, where: str) -> Program:
    """`program` with the params of `trained` (an artifact of the same workflow)."""
    if trained.workflow.name != program.workflow.name:
        raise CompileError(
            f"'{where}' holds workflow '{trained.workflow.name}', not '{program.workflow.name}'"
        )
    mine = {p.name: p for p in program.params}
    theirs = {p.name: p for p in trained.params}
    odd = sorted(n for n in theirs if n not in mine or theirs[n].kind != mine[n].kind)
    if odd:
        raise CompileError(
            f"'{where}' was trained on another version of workflow '{program.workflow.name}': "
            f"its params {', '.join(odd)} do not match this module's"
        )
    return evolve(program, params=tuple(theirs.get(p.name, p) for p in program.params))
