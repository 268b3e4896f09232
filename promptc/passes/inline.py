"""Pass 0 — inline the workflows imported from other files (composition).

    use "retrieve.pflow" { multihop_retrieve }

binds `multihop_retrieve` as a function whose module is a `.pflow` file (the lowering
treats every `use` alike). This pass, first in the pipeline, asks the compile driver's
`load` for that file's lowered program (a pass reads no file and imports no module: see
`promptc.compiler.Loader`), inlines the callee's own imports the same way, recursively,
checks that its workflow is the one named, and replaces every call
`multihop_retrieve(a, b)` by the callee's body:

- the callee's nodes are copied under the prefix `multihop_retrieve.` (a second call
  site gets `multihop_retrieve.1.`, ...): its input nodes are replaced by the caller's
  argument values, and later caller nodes read the callee's output instead of the call;
- its params, llms, models and Python functions become the caller's under the qualified
  name `multihop_retrieve.NAME` (a model or function identical to one of the caller's
  is shared instead). Params are shared by all call sites — one set of weights, trained
  with the rest, shown by `inspect` and the report, saved in the caller's `.pfc`. An
  llm named `ns.f` reads its template placeholders `{p}` from the params of its own
  namespace, `ns.p` (`Program.template_params`), so templates are copied unchanged;
- a call inside an `if` branch guards the copied nodes with the branch's guard (and-ed
  with the callee's own guards); a call inside a loop body is copied into that body,
  and unrolling makes one copy per step.

A workflow decorated with `@promptc.workflow` may call another decorated workflow: the
decorator binds it as `use "<its file>.py" { name }` and this pass inlines the callee's
lowered program the same way.

Errors (located at the `use` or the call): a file whose workflow has another name, a
cycle of imports (`a.pflow -> b.pflow -> a.pflow`), a wrong number of arguments, and a
workflow that inlining makes larger than the node limit (`PROMPTC_MAX_NODES`, checked
while copying, so N files that each call the next twice fail at the call that crosses
the limit instead of copying 2^N bodies). Loading errors (a missing or unreadable file)
are the loader's, at the `use`. An error inside an imported file is reported in that file.

`Program.source_hash` of the caller becomes a hash of its own and its imports' hashes, so
a resumed training notices a change in an imported file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from attrs import evolve, frozen

from promptc.build import Env
from promptc.errors import CompileError
from promptc.template import placeholders
from promptc.ir import Function, LlmDef, Loop, Node, Program, walk
from promptc.passes.unroll import max_nodes

MAX_DEPTH = 32  # nested imports deeper than this are a compile error, not a stack overflow


@frozen
class Loaded:
    """A workflow a `use` imports: its lowered program (not yet inlined), and the key that
    names its source in an import chain (its resolved path; and workflow, for Python)."""

    key: str
    program: Program


Load = Callable[[Function, Program], "Loaded | None"]


def inline(program: Program, load: Load, _stack: tuple[str, ...] = ()) -> Program:
    """Inline the workflows `program` imports; `load(fn, program)` gives the workflow a
    `use` binds (None for a plain Python function). `_stack`: the sources being inlined,
    outermost first, this one last."""
    stack = _stack or (_key(program),)
    imports = {}
    for fn in program.functions:
        loaded = load(fn, program)
        if loaded is None:
            continue
        _check_cycle(loaded.key, fn, stack)
        callee = loaded.program
        if callee.workflow.name != fn.attr:
            raise CompileError(
                f"'{fn.module}' has no workflow '{fn.attr}' (its workflow is '{callee.workflow.name}')", fn.span
            )
        imports[fn.name] = (fn, inline(callee, load, stack + (loaded.key,)))
    if not imports:
        return program.with_pass("inline")
    return _Inliner(program, imports).run().with_pass("inline")


# -- the import chain --------------------------------------------------------------------


def base_dir(program: Program) -> Path:
    """The folder a program's relative `use` paths start from."""
    f = program.file
    return Path(f).resolve().parent if f and not f.startswith("<") else Path.cwd()


def _key(program: Program) -> str:
    """What identifies a source in an import chain: its path (and workflow, for Python)."""
    f = program.file
    if not f or f.startswith("<"):
        return f"{f}::{program.workflow.name}"
    path = str(Path(f).resolve())
    return f"{path}::{program.workflow.name}" if f.endswith(".py") else path


def _check_cycle(key: str, fn: Function, chain: tuple[str, ...]) -> None:
    if key in chain:
        names = [_short(k) for k in chain[chain.index(key) :]] + [_short(key)]
        raise CompileError(f"import cycle: {' -> '.join(names)}", fn.span)
    if len(chain) > MAX_DEPTH:
        raise CompileError(f"imports nested deeper than {MAX_DEPTH} files", fn.span)


def _short(key: str) -> str:
    path, _, name = key.partition("::")
    return f"{os.path.basename(path)}:{name}" if name else os.path.basename(path)


# -- copying the callee into the caller --------------------------------------------------


class _Inliner:
    def __init__(self, program: Program, imports: dict[str, tuple[Function, Program]]):
        self.p = program
        self.imports = imports
        self.models = list(program.models)
        self.params = list(program.params)
        self.llms = list(program.llms)
        self.functions = [f for f in program.functions if f.name not in imports]
        self.sites: dict[str, int] = {}
        self.renamed: dict[str, tuple[dict, dict]] = {}  # import -> (llm names, function names)
        self.env = Env()  # call node -> the callee output that replaces it
        self.caller_dir = base_dir(program)
        for name, (_fn, callee) in imports.items():
            self.renamed[name] = self._declarations(name, callee)
        self.limit = max_nodes()
        self.size = {name: _count(callee.workflow.nodes) for name, (_fn, callee) in imports.items()}
        self.count = _count(program.workflow.nodes)

    def run(self) -> Program:
        nodes = self.block(self.p.workflow.nodes)
        wf = evolve(self.p.workflow, nodes=tuple(nodes), output=self.env[self.p.workflow.output])
        # the hash covers the imported sources too: a resumed training notices their changes
        hashes = self.p.source_hash + "".join(callee.source_hash for _fn, callee in self.imports.values())
        return evolve(
            self.p,
            source_hash=hashlib.sha256(hashes.encode("utf-8")).hexdigest(),
            models=tuple(self.models),
            params=tuple(self.params),
            llms=tuple(self.llms),
            functions=tuple(self.functions),
            workflow=wf,
        )

    # declarations ------------------------------------------------------------------
    def _declarations(self, name: str, callee: Program) -> tuple[dict, dict]:
        """Copy what the callee's workflow uses (the declarations of its file it does not
        use are left behind) under `name.`; returns its llm and function renamings."""
        prefix = name + "."
        used_llms = {n.target for n in walk(callee.workflow.nodes) if n.op == "llm"}
        used_fns = {n.target for n in walk(callee.workflow.nodes) if n.op == "call"}
        used_params: set[str] = set()
        used_models: set[str] = set()
        for l in callee.llms:
            if l.name not in used_llms:
                continue
            used_models.add(l.model)
            scope = callee.template_params(l)
            args = {a for a, _t in l.params}
            for msg in l.messages:
                for hole in placeholders(msg.template):
                    if hole not in args and hole in scope:
                        used_params.add(scope[hole].name)
            if l.demos:
                used_params.add(l.demos)
        callee = evolve(
            callee,
            models=tuple(m for m in callee.models if m.name in used_models),
            params=tuple(p for p in callee.params if p.name in used_params),
            llms=tuple(l for l in callee.llms if l.name in used_llms),
            functions=tuple(f for f in callee.functions if f.name in used_fns),
        )
        models: dict[str, str] = {}
        for m in callee.models:
            same = next((x for x in self.models if x.name == m.name and (x.default, x.env) == (m.default, m.env)), None)
            if same is not None:
                models[m.name] = m.name
            else:
                models[m.name] = prefix + m.name
                self.models.append(evolve(m, name=prefix + m.name))
        for prm in callee.params:
            self.params.append(evolve(prm, name=prefix + prm.name, peers=()))
        llms = {}
        for l in callee.llms:
            llms[l.name] = prefix + l.name
            self.llms.append(
                LlmDef(
                    name=prefix + l.name,
                    params=l.params,
                    returns=l.returns,
                    model=models.get(l.model, l.model),
                    messages=l.messages,
                    demos=prefix + l.demos if l.demos else None,
                    span=l.span,
                )
            )
        functions = {}
        callee_dir = base_dir(callee)
        for f in callee.functions:
            module = f.module
            if not module.startswith("std."):
                module = os.path.relpath(callee_dir / module, self.caller_dir)
            same = next((x for x in self.functions if x.name == f.name and (x.module, x.attr) == (module, f.attr)), None)
            if same is not None:
                functions[f.name] = f.name
            else:
                functions[f.name] = prefix + f.name
                self.functions.append(evolve(f, name=prefix + f.name, module=module))
        return llms, functions

    # nodes ---------------------------------------------------------------------------
    def block(self, nodes: tuple[Node, ...]) -> list[Node]:
        out: list[Node] = []
        for n in nodes:
            if n.op == "call" and n.target in self.imports:
                out.extend(self.call(n, self.env.all(n.args), self.env.opt(n.guard)))
                continue
            out.append(self.env.copy(n, loop=self.loop(n.loop)) if n.loop is not None else self.env.copy(n))
        return out

    def loop(self, lp: Loop) -> Loop:
        env = self.env
        carried = tuple((v, env[i], ph) for v, i, ph in lp.carried)
        body = tuple(self.block(lp.body))
        updates = tuple((v, env[u]) for v, u in lp.updates)
        return evolve(lp, carried=carried, items=env.opt(lp.items), body=body, updates=updates, brk=env.opt(lp.brk))

    def call(self, n: Node, args: tuple[str, ...], guard: str | None) -> list[Node]:
        fn, callee = self.imports[n.target]
        wf = callee.workflow
        if len(args) != len(wf.inputs):
            raise CompileError(
                f"workflow '{n.target}' takes {len(wf.inputs)} argument{'s' if len(wf.inputs) != 1 else ''}, got {len(args)}",
                n.span,
            )
        self.count += self.size[n.target]
        if self.count > self.limit:
            raise CompileError(
                f"inlining workflow '{n.target}' ({self.size[n.target]:,} nodes) here makes the workflow more than "
                f"{self.limit:,} nodes (set PROMPTC_MAX_NODES to raise the limit)",
                n.span,
            )
        k = self.sites.get(n.target, 0)
        self.sites[n.target] = k + 1
        prefix = f"{n.target}." if k == 0 else f"{n.target}.{k}."
        llms, functions = self.renamed[n.target]
        by_input = dict(zip((name for name, _t in wf.inputs), args))
        names: dict[str, str] = {}
        out: list[Node] = []
        conj: dict[str, str] = {}  # the callee's own guard -> and(call guard, it)

        def rn(x: str | None) -> str | None:
            return None if x is None else names.get(x, prefix + x)

        def copy(nodes: tuple[Node, ...], top: bool) -> list[Node]:
            res: list[Node] = []
            for c in nodes:
                if c.op == "input" and top:
                    names[c.name] = by_input[c.target]
                    continue
                own = rn(c.guard)
                if top and guard is not None:
                    if own is None:
                        own = guard
                    else:
                        if own not in conj:
                            conj[own] = f"{own}.in"
                            res.append(Node(name=conj[own], op="prim", args=(guard, own), target="and", span=c.span))
                        own = conj[own]
                target = c.target
                if c.op == "llm":
                    target = llms.get(c.target, c.target)
                elif c.op == "call":
                    target = functions.get(c.target, c.target)
                loop = None
                if c.loop is not None:
                    lp = c.loop
                    loop = evolve(
                        lp,
                        index=rn(lp.index),
                        carried=tuple((v, rn(i), rn(ph)) for v, i, ph in lp.carried),
                        items=rn(lp.items),
                        item=rn(lp.item),
                        body=tuple(copy(lp.body, False)),
                        updates=tuple((v, rn(u)) for v, u in lp.updates),
                        brk=rn(lp.brk),
                        results=tuple((v, rn(r)) for v, r in lp.results),
                    )
                res.append(
                    evolve(c, name=prefix + c.name, args=tuple(rn(a) for a in c.args), target=target, guard=own, loop=loop)
                )
            return res

        out = copy(wf.nodes, True)
        self.env[n.name] = rn(wf.output)  # type: ignore[assignment]
        return out


def _count(nodes: tuple[Node, ...]) -> int:
    """Nodes, loop bodies included (each once: unrolling multiplies them, and checks)."""
    return sum(1 for _ in walk(nodes))
