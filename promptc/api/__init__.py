"""The Python API: what `import promptc` gives (the CLI and the language server are
shells over it). Each name is imported on first use from its module:

    serving     load                          (no compiler or training code for a .pfc)
    targets     what a "workflow" argument may be: a decorated function, a .pflow / .py /
                .pfc path ("mod.py:name"), a compiled Program or a loaded Workflow
    training    optimize, aoptimize, Trained
    evaluation  evaluate, aevaluate, Evaluation, RowResult

Layers, top to bottom: `promptc.api`, `promptc.cli`, `promptc.lsp` and the decorator
(`promptc.decorator`); `promptc.compiler` (drives `frontend` and `passes`) and
`promptc.optim` (training, on `runtime` and `passes`); `promptc.runtime` (serving, on the
core only); the core (`ir`, `types`, `errors`, `build`, `template`, `codec`, `artifact`,
`bind`, `data`). Imports go downward only.
"""
