"""`promptc.load`: serve an artifact, or a source compiled first.

    wf = promptc.load("trec.pfc")        # serve an artifact (no compiler or training code)
    wf = promptc.load("trec.pflow")      # or compile a source first
    wf = promptc.load("trec.pfc", workflow=trec)  # trained params on a decorated workflow
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptc.runtime import workflow as serving
from promptc.runtime.workflow import Workflow


def load(
    path: str | Path,
    *,
    cache_dir: str | Path | None = None,
    no_cache: bool = False,
    engine: Any = None,
    concurrency: int = 8,
    trust_code: bool = False,
    workflow: Any = None,
) -> Workflow:
    """Load a compiled `.pfc` (`promptc.runtime.workflow.load`, which imports no compiler
    or training code), or compile a `.pflow` source and serve it.

    `cache_dir` defaults to `.promptc/cache` in the working directory; `no_cache=True`
    bypasses the cache; `engine` replaces the default engine altogether. An artifact may
    import user code only from its own folder unless `trust_code=True` (`promptc.bind`).

    `workflow`, a `@promptc.workflow` function: the artifact's trained params are put on
    that workflow's own program, whose functions come from the module the caller imported
    (`trec.load(path)` is the same); nothing is imported from the artifact's folder.
    """
    path = Path(path)
    if workflow is not None:
        return workflow.load(path, cache_dir=cache_dir, no_cache=no_cache, engine=engine, concurrency=concurrency)
    if path.suffix != ".pflow":
        return serving.load(
            path, cache_dir=cache_dir, no_cache=no_cache, engine=engine, concurrency=concurrency, trust_code=trust_code
        )
    # a source is the user's own code: compiled here, the compiler imported only for it
    from promptc.compiler import compile_file  # noqa: PLC0415 - serving an artifact never needs it

    return Workflow(
        compile_file(str(path)),
        engine=engine,
        cache_dir=cache_dir,
        no_cache=no_cache,
        search_dirs=(path.resolve().parent,),
        concurrency=concurrency,
    )


__all__ = ["load", "Workflow"]
