"""`promptc lsp`: the `.pflow` language server on stdin/stdout (see `promptc.lsp`).

Editors start it themselves; it needs the `lsp` extra (pygls): `pip install 'promptc[lsp]'`.
"""

from __future__ import annotations

import argparse
import logging
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", metavar="FILE", help="write the server's log to FILE (stdout is the protocol)")
    parser.add_argument(
        "--trust", action="store_true", help="import the Python the documents `use` (default: read it, never run it)"
    )


def main(args: argparse.Namespace) -> int:
    try:
        import pygls  # noqa: F401
    except ImportError:
        sys.stderr.write("promptc lsp: error: the language server needs pygls: pip install 'promptc[lsp]'\n")
        return 1
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from promptc.lsp import serve

    serve(trust=args.trust)
    return 0
