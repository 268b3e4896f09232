"""`promptc lsp`: a language server for `.pflow` files (Language Server Protocol over stdio).

What it does, with the compiler's own code (nothing here re-implements the language):
- diagnostics as you type: each open document is compiled (parse, lower, every pass) on
  open and on every change, in a worker process, and the first `CompileError` is
  published at its span, with information diagnostics where only running the document's
  Python could check something;
- hover: a local variable's type, a param's kind and role, a model's string and options,
  an `llm`'s or workflow's signature, an imported function's signature and docstring;
- go to definition: the declaration of a model, param, llm, workflow or imported name
  (an imported function goes to its `def` in the Python file, found by reading that file
  with `ast`), and the `let` / `for` / argument that binds a local variable.

**It runs no user code unless trusted.** Untrusted (the default), documents compile with
`trust_code=False`: the Python functions a workflow `use`s are typed from their source,
never imported, and the compile worker refuses to execute any file outside promptc and
Python (`promptc.lsp.worker`). `promptc lsp --trust`, or the initialization option
`{"trust": true}`, lifts it, as an editor's workspace trust does.

**It survives its client.** The stream is read by `promptc.lsp.framing` (absurd or
malformed headers are logged and skipped, never allocated or waited on), and compiles run
in worker processes (`promptc.lsp.pool`): the next edit cancels a running compile, and
hover and definition answer from the last analysis while a document compiles.

Modules, by job: `analysis` (one document version: compile, diagnostics, the index; runs
in the worker), `index` (hover and definition over the index; plain data), `worker` (the
worker process), `pool` (the server's side of the workers), `framing` (the stream),
`server` (pygls wiring). Positions: promptc spans are 1-based lines and characters; LSP
positions are 0-based lines and UTF-16 code units, converted in `server`.
"""

from __future__ import annotations

from promptc.lsp.index import Index, definition, hover, word_at

__all__ = ["Index", "definition", "hover", "serve", "word_at"]


def serve(*, trust: bool = False) -> None:
    """Run the language server on stdin/stdout (see `promptc.lsp.server.serve`)."""
    from promptc.lsp.server import serve as run

    run(trust=trust)
