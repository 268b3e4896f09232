"""The typed intermediate representation every frontend lowers to and every pass rewrites.

A `Program` is plain frozen data: the models, params, imported functions and `llm`
definitions of one source file, one `Workflow` whose body is a list of SSA `Node`s in
topological order, the optional `TrainSpec`, and — after the gradient pass — the backward
program: a tuple of `GradNode`s in the order they run. Lookups by name (`node`, `param`,
`llm`, `function`, `model`) go through dicts built once per program.

Node kinds (a small closed set, as in torch.fx; `target` means something per kind):

=========  ==========================================  =======================================
op         args (value names read)                     target
=========  ==========================================  =======================================
input      ()                                          the workflow argument's name
const      ()                                          the constant (str, int, float, bool,
                                                       None, or a list/dict of those)
llm        one value per argument of the `llm`, in     the `LlmDef` name
           declaration order
call       positional argument values                  the `Function` name (its local name)
field      (record,)                                   field name (str)
index      (list,)                                     position (int)
list       the elements                                None
prim       operands                                    operator: eq ne lt le gt ge and or
                                                       not add len
guard      (alive_before, stop_condition)              None; true iff alive_before and not
                                                       stop_condition (loop breaks)
select     (condition, if_true, if_false)              None for a loop-carried value after a
                                                       guarded step; the variable's name
                                                       for a variable merged after an `if`
loop       ()  (what it reads is inside `loop`)        the loop label; `loop` holds the body
=========  ==========================================  =======================================

Every node carries its source `span`, its `type` (None until type checking), its time
index `time = TimeIndex(loop, step)` when it came from an unrolled loop, and `guard`: the
name of a bool value; when that value is false the node is not executed (its value is
None and the trace records it as skipped).

Loops before unrolling (`op == "loop"`, see `Loop`) are structured: the body is its own
node list in which the step index and the loop-carried variables are referenced by
*placeholder* names (`Loop.index`, and the third item of each `Loop.carried` entry).
These placeholders are not defined by any node: the unroll pass substitutes, per step, a
`const` for the index and the right value for each carried variable. After a loop, each
carried variable has a new SSA name (`Loop.results`) that later nodes use.

`if c { A } else { B }` needs no structure: the lowering guards A's nodes by `c` and B's
by `not c` (under an enclosing guard g: `and(g, c)` and `guard(g, c)`), and each variable
either branch assigns gets `select(c, value after A, value after B)`, guarded by g.

`for x in xs max N` (kind "each") is a loop over a runtime list: `Loop.items` names the
list, `Loop.item` is the placeholder of the element inside the body. Unrolled, step s is
guarded by `s < len(xs)` (and the enclosing guard), its element is `index xs[s]`, and
carried variables get a `select` at every step.

`break if c` is the last statement of a `loop max` body: after step s has run, including
its updates of carried variables, the loop stops if `c` is true. Unrolled, step s+1 gets
a guard `alive_{s+1} = guard(alive_s, c_s)` and each carried variable becomes
`select(alive_{s+1}, update_{s+1}, previous)`.
"""

from __future__ import annotations

import functools
import math
import os
import re
from typing import Any, Iterator

from attrs import evolve, field, frozen

from promptc.errors import Span
from promptc.types import Type

# Node kinds, in one place, so that dispatch tables can check they cover them all.
OPS = ("input", "const", "llm", "call", "field", "index", "list", "prim", "guard", "select", "loop")
PRIMS = ("eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "add", "len")


# Options a `model` declaration may carry (`model m = "..." { base_url "..."; timeout 30 }`),
# with the Python type of their value. Where a model lives: base_url (the API base of an
# OpenAI-compatible server, or any provider's endpoint), key_env (the NAME of the
# environment variable holding its API key: the key itself is never written anywhere),
# timeout (seconds per attempt), response_schema (true/false: whether the endpoint
# accepts a JSON schema in `response_format`; unset, litellm's model table decides).
# How it decodes by default: temperature, top_p, max_tokens, seed.
MODEL_OPTIONS: dict[str, type] = {
    "base_url": str,
    "key_env": str,
    "timeout": float,
    "response_schema": bool,
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "seed": int,
}

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_model_option(name: str, value: Any) -> Any:
    """The value of model option `name`, normalized (int -> float where a float is
    expected); ValueError with a message for the user when the name or value is wrong."""
    want = MODEL_OPTIONS.get(name)
    if want is None:
        raise ValueError(f"unknown model option '{name}' (options: {', '.join(MODEL_OPTIONS)})")
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not want:
        word = {str: "a string", float: "a number", int: "an integer", bool: "true or false"}[want]
        raise ValueError(f"model option '{name}' needs {word}, got {value!r}")
    if want is int and not 0 <= value < 2**31:
        raise ValueError(f"model option '{name}' must be between 0 and {2**31 - 1}, got {value!r}")
    if want is float and not math.isfinite(value):
        raise ValueError(f"model option '{name}' must be a finite number, got {value!r}")
    if name == "key_env" and not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "key_env is the NAME of the environment variable that holds the API key "
            '(like "OPENAI_API_KEY"), never the key itself'
        )
    if name == "base_url" and not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://\S+$", value):
        raise ValueError(f'base_url needs a URL like "http://127.0.0.1:8080/v1", got {value!r}')
    if name in ("timeout", "top_p") and not value > 0:
        raise ValueError(f"model option '{name}' must be > 0, got {value!r}")
    if name == "top_p" and value > 1:
        raise ValueError(f"model option 'top_p' must be <= 1, got {value!r}")
    if name == "temperature" and not value >= 0:
        raise ValueError(f"model option 'temperature' must be >= 0, got {value!r}")
    if name == "max_tokens" and value < 1:
        raise ValueError(f"model option 'max_tokens' must be >= 1, got {value!r}")
    return value


@frozen
class Model:
    """`model task = env("PROMPTC_TASK_MODEL", "local/default")` or `model m = "openai/gpt-4o"`.

    `options` are the declared `MODEL_OPTIONS` as sorted (name, value) pairs. Each one,
    and the model string, can be overridden from the environment: `PROMPTC_<NAME>_<OPTION>`
    (e.g. `PROMPTC_TASK_BASE_URL` for `model task`); see `promptc.runtime.endpoint`.
    """

    name: str
    default: str
    env: str | None = None
    span: Span | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def resolve(self, environ: "os._Environ[str] | dict[str, str] | None" = None) -> str:
        environ = os.environ if environ is None else environ
        if self.env and environ.get(self.env):
            return environ[self.env]
        return self.default

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


@frozen
class Demo:
    """One few-shot example: the `llm`'s arguments and the answer it should give."""

    inputs: tuple[tuple[str, Any], ...]
    output: Any


@frozen
class Param:
    """A prompt or demos parameter: the weights of a workflow.

    `kind` is "prompt" (its value is `text`) or "demos" (its value is `demos`, at most
    `max_demos`). `role` says what the param is for; the optimizer reads it. `peers` is
    filled by the peer pass: the other params used by the same `llm` node(s). `nearest`
    (0: off) makes `demos` a pool from which each call shows the `nearest` demos most
    similar to its inputs (promptc.runtime.nearest); training sets it.
    """

    name: str
    kind: str
    trainable: bool = False
    role: str = ""
    text: str = ""
    demos: tuple[Demo, ...] = ()
    max_demos: int | None = None
    span: Span | None = None
    peers: tuple[str, ...] = ()
    nearest: int = 0


@frozen
class Function:
    """A Python callable bound by `use`: a functional node.

    `module` is "std.<name>" for the standard library or the path string given in the
    source (relative to the source file). `attr` is the callable's Python name, `name` its
    local name (the same unless aliased). The resolve pass fills `doc` (the docstring),
    `params` and `returns` from the callable's signature and annotations.
    """

    name: str
    module: str
    attr: str
    doc: str = ""
    params: tuple[tuple[str, Type], ...] = ()
    returns: Type | None = None
    span: Span | None = None


@frozen
class Message:
    """One message template of an `llm`: role "system", "user" or "assistant"."""

    role: str
    template: str
    span: Span | None = None


@frozen
class LlmDef:
    """`llm NAME(args) -> type via MODEL { system "...", demos P, user "..." }`.

    `demos` names a demos param (rendered as user/assistant turns before the last user
    message). `uses` lists, in first-use order, the params referenced by `{name}` in the
    templates plus the demos param; the resolve pass fills it.
    """

    name: str
    params: tuple[tuple[str, Type], ...]
    returns: Type
    model: str
    messages: tuple[Message, ...]
    demos: str | None = None
    uses: tuple[str, ...] = ()
    span: Span | None = None


@frozen
class TimeIndex:
    loop: str
    step: int

    def __str__(self) -> str:
        return f"{self.loop}#{self.step}"


@frozen
class Loop:
    """A structured loop, before the unroll pass.

    kind: "for" (`for i in 0..N`, bound N), "max" (`loop max N`) or "each"
          (`for x in xs max N`: `items` is the list's value name, `item` the element's
          placeholder in the body).
    index: placeholder name of the step index inside the body (for-loops), else None.
    carried: (variable, initial value name, placeholder name inside the body).
    body: the nodes of one iteration.
    updates: (variable, body value name holding its value at the end of an iteration).
    brk: body value name of the `break if` condition, or None.
    results: (variable, SSA name of its value after the loop).
    """

    label: str
    kind: str
    bound: int
    index: str | None = None
    carried: tuple[tuple[str, str, str], ...] = ()
    body: tuple["Node", ...] = ()
    updates: tuple[tuple[str, str], ...] = ()
    brk: str | None = None
    results: tuple[tuple[str, str], ...] = ()
    items: str | None = None
    item: str | None = None
    # Where the source says it (for errors): the `break if` statement, and the last
    # assignment of each carried variable in one iteration (variable, span).
    brk_span: Span | None = None
    update_spans: tuple[tuple[str, Span], ...] = ()


@frozen
class Node:
    name: str
    op: str
    args: tuple[str, ...] = ()
    target: Any = None
    type: Type | None = None
    span: Span | None = None
    time: TimeIndex | None = None
    guard: str | None = None
    loop: Loop | None = None


@frozen
class Workflow:
    name: str
    inputs: tuple[tuple[str, Type], ...]
    returns: Type
    nodes: tuple[Node, ...]
    output: str
    span: Span | None = None
    output_span: Span | None = None  # the `return` statement


@frozen
class Support:
    """`supports VALUE in FIELD` in a train block: credit for intermediate steps.

    `value` is a variable of the workflow as written (`found`), `nodes` the values the
    lowering gave it (every `let` and assignment, before unrolling: `found`; an unrolled
    copy is `found@hop#0`, see `base_name`), `field` the dataset field of a training row
    that it should hit (`supporting_titles`). A sample whose value at some step hits the
    row's field is a success for the `llm` step(s) that computed that value
    (promptc.optim.credit), whatever the workflow's final score.
    """

    value: str
    field: str
    nodes: tuple[str, ...] = ()
    span: Span | None = None


def base_name(node: str) -> str:
    """The lowered value an unrolled node is a copy of: `found@hop#0` -> `found`."""
    return node.split("@", 1)[0]


@frozen
class TrainSpec:
    """`train WORKFLOW { metric M; answer FIELD; teacher MODEL; backward MODEL; optimizer MODEL;
    supports VALUE in FIELD }`.

    `metric` names a bound function `(got, expected) -> float|bool`; `answer` is the dataset
    field holding the expected answer; the three models default to the task model;
    `supports` (any number) gives intermediate steps credit from other fields of a row.
    """

    workflow: str
    metric: str
    answer: str = "answer"
    teacher: str | None = None
    backward: str | None = None
    optimizer: str | None = None
    span: Span | None = None
    supports: tuple[Support, ...] = ()


# Gradient node kinds (the backward program): the loss on the output, the sum of the
# feedback a value receives from its consumers, and one rule application per forward node.
GRAD_OPS = ("loss", "sum", "grad")


@frozen
class GradNode:
    """One node of the backward program (see `promptc.passes.gradient`).

    Every gradient node defines one value, named `name`, from the values named in `args`:

    - `loss`: the metric's verdict on the workflow's output `node` (a list of one text);
    - `sum`: the feedback on the forward value `node`: the texts its consumers (the `grad`
      nodes in `args`, in the order they ran) sent it, gathered in one list;
    - `grad`: the rule of the forward node `node`, whose op is `rule` (the key of the rule
      table), applied to the feedback on its output (`args`: the `sum` of `node`); its
      value maps each of `feeds` (trainable params and upstream forward values, in the
      order the rule asks about them) to the feedback it sends there.

    Rule fields: `llm` names the `llm` definition of an llm node; `function` and `doc` are
    the name and docstring of a functional node's function; `cond` is the condition that
    routes a select's feedback to one of `branches` (its value if true, if false), and
    `variable` the variable merged after an `if` ("" for a loop-carried value).
    `time` and `span` are the forward node's.
    """

    name: str
    op: str
    node: str
    args: tuple[str, ...] = ()
    rule: str = ""
    feeds: tuple[str, ...] = ()
    time: TimeIndex | None = None
    span: Span | None = None
    llm: str = ""
    function: str = ""
    doc: str = ""
    cond: str = ""
    branches: tuple[str, ...] = ()
    variable: str = ""


@frozen(slots=False)  # not slotted: the name indexes below are cached on the instance
class Program:
    file: str
    source_hash: str
    models: tuple[Model, ...]
    params: tuple[Param, ...]
    functions: tuple[Function, ...]
    llms: tuple[LlmDef, ...]
    workflow: Workflow
    train: TrainSpec | None = None
    backward: tuple[GradNode, ...] = ()
    passes: tuple[str, ...] = field(default=())

    # -- lookups (O(1): each index is built once per program; records are frozen) -------
    def model(self, name: str) -> Model:
        return _lookup(self._index["model"], name, "model")

    def param(self, name: str) -> Param:
        return _lookup(self._index["param"], name, "param")

    def function(self, name: str) -> Function:
        return _lookup(self._index["function"], name, "function")

    def llm(self, name: str) -> LlmDef:
        return _lookup(self._index["llm"], name, "llm")

    def node(self, name: str) -> Node:
        return _lookup(self._index["node"], name, "node")

    @functools.cached_property
    def _index(self) -> dict[str, dict[str, Any]]:
        """Name -> record, per kind; the first of a repeated name wins, as a scan would."""
        kinds = (("model", self.models), ("param", self.params), ("function", self.functions),
                 ("llm", self.llms), ("node", self.workflow.nodes))
        out: dict[str, dict[str, Any]] = {}
        for kind, items in kinds:
            table: dict[str, Any] = {}
            for it in items:
                table.setdefault(it.name, it)
            out[kind] = table
        return out

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.workflow.nodes

    def template_params(self, llm: LlmDef) -> dict[str, Param]:
        """The params the templates of `llm` may name, by the name they use.

        An llm inlined from another workflow has a qualified name `ns.f` (see
        `promptc.passes.inline`); its `{p}` means the param `ns.p` of the same namespace.
        A top-level llm sees the params without a namespace.
        """
        ns = llm.name.rpartition(".")[0]
        prefix = ns + "." if ns else ""
        out = {}
        for p in self.params:
            if p.name.startswith(prefix) and "." not in p.name[len(prefix) :]:
                out[p.name[len(prefix) :]] = p
        return out

    def trainable(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.trainable)

    def called(self) -> frozenset[str]:
        """The names of the functions the workflow's `call` nodes run."""
        return frozenset(n.target for n in self.nodes if n.op == "call")

    # -- updates (new programs; records are frozen) ----------------------------------
    def with_nodes(self, nodes: tuple[Node, ...] | list[Node]) -> "Program":
        return evolve(self, workflow=evolve(self.workflow, nodes=tuple(nodes)))

    def with_param(self, param: Param) -> "Program":
        return evolve(self, params=tuple(param if p.name == param.name else p for p in self.params))

    def with_pass(self, name: str, **changes: Any) -> "Program":
        return evolve(self, passes=self.passes + (name,), **changes)


def walk(nodes: tuple[Node, ...]) -> Iterator[Node]:
    """Every node, descending into loop bodies (before unrolling)."""
    for n in nodes:
        yield n
        if n.loop is not None:
            yield from walk(n.loop.body)


def _lookup(table: dict[str, Any], name: str, what: str):
    try:
        return table[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name is no name either
        raise KeyError(f"no {what} {name!r}") from None
