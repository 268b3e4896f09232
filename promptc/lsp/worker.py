"""The compile worker: `python -m promptc.lsp.worker [--trust]`, one process the language
server sends documents to (one JSON line each) and reads analyses from (one JSON line each).

Compiling in another process keeps the server's request loop free (hover and definition
answer from the last `Index` while a document compiles), lets a compile be cancelled for
real (the server kills the worker when an edit supersedes it; `promptc.lsp.pool`), and
keeps whatever a hostile document does to the compiler (memory, time, a crash) out of the
server: the worker's address space is capped at `MEMORY_LIMIT`.

Untrusted (no `--trust`), the worker compiles with `trust_code=False`, and on top of that
refuses to execute any code object from a file outside promptc and the Python installation
(an audit hook on `exec`): even a compiler path that tried to import a user's module would
fail with an error instead of running it. The protocol streams are private file
descriptors: fd 0 and 1 point at /dev/null and stderr, so code that reads stdin or prints
(a trusted user module at import) cannot corrupt the conversation.

Once ready (the compiler imported, the parser built) it writes `{"ready": true}`. Request:
`{"id": N, "source": TEXT, "file": PATH}`. Answer: `{"id": N, "diagnostics":
[[severity, message, span], ...], "index": Index-as-JSON}`, or `{"id": N, "crash": TEXT}`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

MEMORY_LIMIT = 2 * 1024**3  # bytes of address space for one worker
_OWN_PACKAGES = ("promptc", "promptc.stdlib", "promptc.grammar")


def main(argv: list[str] | None = None) -> int:
    try:
        return _serve(sys.argv[1:] if argv is None else argv)
    except (BrokenPipeError, KeyboardInterrupt):  # the server is gone: nothing to answer
        return 0


def _serve(argv: list[str]) -> int:
    trust = "--trust" in argv
    requests, answers = _private_streams()
    _limit_memory()
    if not trust:
        refuse_user_code()
    from promptc.lsp.analysis import analyze, build_index
    from promptc.lsp.index import span_json, to_json

    analyze("workflow w(q: text) -> text { return q }\n", "<warm-up>", trust=trust)  # builds the parser
    _write(answers, {"ready": True})
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            a = analyze(request["source"], request["file"], trust=trust)
            diags = [[d.severity, d.message, span_json(d.span)] for d in a.diagnostics()]
            answer: dict[str, Any] = {"id": request["id"], "diagnostics": diags, "index": to_json(build_index(a))}
        except (Exception, MemoryError, RecursionError) as e:  # a bug, or the memory cap: say so, keep serving
            log.exception("analysing %s failed", request.get("file"))
            answer = {"id": request["id"], "crash": f"{type(e).__name__}: {e}"}
        _write(answers, answer)
    return 0


def _write(out: BinaryIO, answer: dict) -> None:
    out.write(json.dumps(answer).encode("ascii") + b"\n")  # ASCII: a lone surrogate travels escaped
    out.flush()


def _private_streams() -> tuple[BinaryIO, BinaryIO]:
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, encoding="utf-8")
    sys.stdout = sys.stderr
    return requests, answers


def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))
    except (ImportError, ValueError, OSError) as e:  # not on this platform: unlimited
        log.info("cannot cap the worker's memory: %s", e)


def trusted_roots() -> tuple[str, ...]:
    """Where code may be executed from in an untrusted worker: promptc and Python itself."""
    roots: set[str] = set()
    for package in _OWN_PACKAGES:  # promptc.stdlib and promptc.grammar may live apart (package-dir)
        spec = importlib.util.find_spec(package)
        for p in (spec.submodule_search_locations or []) if spec is not None else []:
            roots.add(str(Path(p).resolve()))
    roots.update(str(Path(p).resolve()) for k, p in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib"))
    for p in [*getattr(site, "getsitepackages", lambda: [])(), getattr(site, "getusersitepackages", lambda: "")()]:
        if p:
            roots.add(str(Path(p).resolve()))
    return tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots))


def refuse_user_code() -> None:
    """Install the audit hook that refuses to run code from a file outside `trusted_roots()`."""
    roots = trusted_roots()
    seen: dict[str, bool] = {}

    def allowed(filename: str) -> bool:
        ok = seen.get(filename)
        if ok is None:
            ok = filename.startswith("<") or os.path.realpath(filename).startswith(roots) or filename.startswith(roots)
            seen[filename] = ok
        return ok

    def hook(event: str, args: tuple) -> None:
        if event == "exec" and args:
            filename = getattr(args[0], "co_filename", None)
            if isinstance(filename, str) and not allowed(filename):
                raise PermissionError(f"not running {filename}: the workspace is not trusted")

    sys.addaudithook(hook)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="promptc lsp worker: %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
