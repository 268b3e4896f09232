"""What a "workflow" argument of the API (and the CLI's FILE) may be, as one `Target`.

    target(trec)                      # a @promptc.workflow function
    target("examples/trec/trec.pflow")  # a source, compiled
    target("qtype.py:trec")           # a decorated workflow in a Python file ("qtype.py"
                                      #   alone when it defines exactly one)
    target("runs/trec/trec.pfc")      # an artifact (its own folder's code only, unless trusted)
    target(program) / target(wf)      # a compiled Program, a loaded Workflow

A Python file named here is the user's own code, run to read its workflow (as `python
qtype.py` would); an artifact's code runs under the trust rule of `promptc.bind`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from attrs import frozen

from promptc.artifact import load_program
from promptc.bind import ArtifactRoot, BindError, confine_calls, load_module
from promptc.compiler import compile_file
from promptc.decorator import WorkflowFunction
from promptc.ir import Program
from promptc.runtime.workflow import Workflow


class TargetError(ValueError):
    """A workflow argument that names no workflow (the message says what was found)."""


@frozen
class Target:
    """A program to run or train, and where its Python functions are looked up."""

    program: Program
    search_dirs: tuple[Any, ...] = ()
    decorated: WorkflowFunction | None = None  # when it came from a decorated function


def target(workflow: Any, *, trust_code: bool = False) -> Target:
    if isinstance(workflow, Target):
        return workflow
    if isinstance(workflow, WorkflowFunction):
        return Target(workflow.program, (Path(os.path.abspath(workflow.file)).parent,), workflow)
    if isinstance(workflow, Workflow):
        return Target(workflow.program, workflow.search_dirs)
    if isinstance(workflow, Program):
        real = workflow.file and not workflow.file.startswith("<")
        return Target(workflow, (Path(workflow.file).resolve().parent,) if real else ())
    if isinstance(workflow, (str, Path)):
        return _from_path(str(workflow), trust_code=trust_code)
    raise TargetError(
        f"expected a workflow (a @promptc.workflow function, a .pflow/.py/.pfc path, a Program or a "
        f"Workflow), got {type(workflow).__name__}"
    )


def _from_path(spec: str, *, trust_code: bool) -> Target:
    path_text, name = _split(spec)
    path = Path(path_text)
    if not path.is_file():
        raise TargetError(f"no such file: '{path_text}'")
    suffix = path.suffix.lower()
    if suffix == ".pflow":
        return Target(compile_file(path_text), (path.resolve().parent,))
    if suffix == ".py":
        return target(_decorated(path, name))
    if suffix == ".pfc":
        program = load_program(path_text)
        root = ArtifactRoot(path.resolve().parent, trusted=trust_code)
        confine_calls(program, root)
        return Target(program, (root,))
    raise TargetError(f"'{path_text}': expected a .pflow source, a .py module with a @promptc.workflow, or a .pfc")


def python_file(spec: str) -> Path | None:
    """The module file of a `MODULE.py[:NAME]` spec; None for anything else."""
    path, _name = _split(spec)
    return Path(path) if path.lower().endswith(".py") else None


def _split(spec: str) -> tuple[str, str | None]:
    """`mod.py:name` -> ("mod.py", "name"); a Windows drive letter is not a name."""
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(".py") and tail.isidentifier():
        return head, tail
    return spec, None


def _decorated(path: Path, name: str | None) -> WorkflowFunction:
    try:
        module = load_module(str(path.resolve()))
    except BindError as e:
        raise TargetError(str(e)) from None
    found = {k: v for k, v in vars(module).items() if isinstance(v, WorkflowFunction)}
    if name is not None:
        wf = getattr(module, name, None)
        if not isinstance(wf, WorkflowFunction):
            have = ", ".join(sorted(found)) or "none"
            raise TargetError(f"'{path}' has no @promptc.workflow named '{name}' (its workflows: {have})")
        return wf
    own = {k: v for k, v in found.items() if os.path.abspath(v.file) == str(path.resolve())}
    if len(own) != 1:
        have = ", ".join(sorted(own)) or "none"
        raise TargetError(f"'{path}' defines {len(own)} @promptc.workflow functions ({have}): name one as '{path}:NAME'")
    return next(iter(own.values()))


__all__ = ["Target", "TargetError", "python_file", "target"]
