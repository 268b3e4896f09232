"""`promptc compile FILE [-o OUT.pfc] [--emit ir|backward|dot]`.

Compiles a workflow — a `.pflow` source, or `MODULE.py[:NAME]`, a `@promptc.workflow`
(the module is run to read it, as `python MODULE.py` would) — and writes the `.pfc`
artifact (by default next to the source: `FILE.pfc`, or `<workflow>.pfc` for a module). `--emit` prints the compiled IR, the backward program or Graphviz
text to stdout instead; with `-o` as well, it writes the artifact too.

Exit codes: 0 success; 1 a compile error (printed as `FILE:LINE:COL: error: MESSAGE` with
the source line and a caret, never a traceback), a missing or unreadable file, or an
artifact that cannot be written; 2 bad usage (argparse).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EMITS = ("ir", "backward", "dot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the workflow: a .pflow source, or MODULE.py[:NAME]")
    parser.add_argument("-o", "--output", metavar="OUT.pfc", help="artifact path (default: FILE with .pfc suffix)")
    parser.add_argument("--emit", choices=EMITS, help="print the IR, the backward program or Graphviz dot")


def _error(message: str) -> int:
    sys.stderr.write(f"promptc compile: error: {message}\n")
    return 1


def main(args: argparse.Namespace) -> int:
    from promptc.errors import CompileError

    from promptc.api.targets import TargetError, python_file, target
    from promptc.bind import BindError

    path = Path(args.file)
    module = python_file(args.file)
    if module is None and not path.is_file():
        return _error(f"no such file: '{args.file}'" if not path.exists() else f"not a file: '{args.file}'")
    try:
        if module is not None:
            program = target(args.file).program
            path = module.with_name(program.workflow.name + ".pflow")  # the default artifact's name
        else:
            from promptc.compiler import compile_file

            program = compile_file(path)
    except (TargetError, BindError) as e:
        return _error(str(e))
    except CompileError as e:
        sys.stderr.write(e.render() + "\n")
        return 1
    except RecursionError:
        return _error("the workflow is nested too deeply to compile")
    except Exception as e:  # a bug in the compiler: say so, in one line, not as a traceback
        from promptc.verify import VerifyError

        kind = "IR verification failed" if isinstance(e, VerifyError) else f"{type(e).__name__}"
        return _error(f"internal compiler error ({kind}): {e}; please report it")

    if args.emit:
        from promptc import printer

        fmt = {"ir": printer.format_program, "backward": printer.format_backward, "dot": printer.format_dot}[args.emit]
        sys.stdout.write(fmt(program))
    if args.output or not args.emit:
        out = Path(args.output) if args.output else path.with_suffix(".pfc")
        from promptc.artifact import ArtifactError, save

        try:
            save(program, out)
        except (OSError, ArtifactError) as e:
            return _error(f"cannot write '{out}': {getattr(e, 'strerror', None) or e}")
        if not args.emit:
            sys.stderr.write(f"wrote {out}\n")
    return 0
