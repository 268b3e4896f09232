"""Which model serves each role of a training run: the one place that says it.

    task       the model of the program's first `llm` (what the workflow itself calls)
    backward   `train { backward M }`, else the task model: turns feedback on an llm's
               output into feedback on its params and inputs (promptc.optim.backward)
    optimizer  `train { optimizer M }`, else the task model: proposes new prompt text
               (promptc.optim.instruction)
    teacher    `train { teacher M }` when it differs from the task model, else none:
               reruns failing samples to harvest demos (promptc.optim.demos)

Each role is a model string as the engine routes it (a declaration resolved through its
`env(...)`, or a literal model string).
"""

from __future__ import annotations

from attrs import evolve

from promptc.ir import Program

ROLES = ("task", "backward", "optimizer", "teacher")


def resolve_model(program: Program, name: str | None) -> str | None:
    """A model declaration's resolved string, or `name` itself when it is a literal."""
    if not name:
        return None
    try:
        return program.model(name).resolve()
    except KeyError:
        return name


def task_model(program: Program) -> str:
    """The model of the first `llm` (the default for backward, optimizer and teacher)."""
    for llm in program.llms:
        m = resolve_model(program, llm.model)
        if m:
            return m
    if program.models:
        return program.models[0].resolve()
    raise ValueError("the program has no model")


def backward_model(program: Program) -> str:
    spec = program.train
    return resolve_model(program, spec.backward if spec else None) or task_model(program)


def optimizer_model(program: Program) -> str:
    spec = program.train
    return resolve_model(program, spec.optimizer if spec else None) or task_model(program)


def teacher_model(program: Program) -> str | None:
    """The teacher model string, or None when there is none distinct from the task model."""
    spec = program.train
    teacher = resolve_model(program, spec.teacher if spec else None)
    if not teacher or teacher == task_model(program):
        return None
    return teacher


def model_for(program: Program, role: str) -> str | None:
    """The model serving `role` (one of `ROLES`) for `program`."""
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}' (roles: {', '.join(ROLES)})")
    return {"task": task_model, "backward": backward_model, "optimizer": optimizer_model, "teacher": teacher_model}[
        role
    ](program)


def with_model(program: Program, model: str) -> Program:
    """`program` with every model declaration resolved to `model` (for teacher runs); the
    declarations' own endpoints are dropped: the engine routes `model` (`use_models`)."""
    return evolve(program, models=tuple(evolve(m, default=model, env=None, options=()) for m in program.models))


__all__ = [
    "ROLES", "backward_model", "model_for", "optimizer_model", "resolve_model", "task_model", "teacher_model",
    "with_model",
]
