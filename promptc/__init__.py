"""promptc: a compiler and runtime that trains the prompts of LLM workflows.

    import promptc
    wf = promptc.load("trec.pfc")          # serve an optimized artifact
    wf(question="Who wrote Hamlet?")

    trained = promptc.optimize(trec, train_rows, val_rows)   # train from Python
    promptc.evaluate(trained.workflow, test_rows).score

    @promptc.workflow                      # or write the workflow in Python
    def trec(question: str) -> str: ...

Names are imported lazily so that serving a loaded workflow imports no compiler or
training code.
"""

from __future__ import annotations

import importlib

from promptc.errors import CompileError, Span

__version__ = "0.1.0"

_LAZY = {
    "load": "promptc.api.serving",
    "optimize": "promptc.api.training",
    "aoptimize": "promptc.api.training",
    "Trained": "promptc.api.training",
    "evaluate": "promptc.api.evaluation",
    "aevaluate": "promptc.api.evaluation",
    "Evaluation": "promptc.api.evaluation",
    "DataError": "promptc.data",
    "ModelStopped": "promptc.runtime.breaker",
    "Workflow": "promptc.runtime.workflow",
    "workflow": "promptc.decorator",
    "llm": "promptc.decorator",
    "prompt": "promptc.decorator",
    "demos": "promptc.decorator",
    "model": "promptc.decorator",
    "use": "promptc.decorator",
    "train": "promptc.decorator",
    "compile_workflow": "promptc.decorator",
    "compile_file": "promptc.compiler",
    "compile_source": "promptc.compiler",
}

__all__ = ["CompileError", "Span", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
