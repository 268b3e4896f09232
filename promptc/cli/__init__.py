"""`promptc` command line: one subcommand per module, imported only when it runs.

Each subcommand module defines `add_arguments(parser)` and `main(args) -> int`.
Exit codes: 0 success, 1 a compile or run error (printed, never a traceback), 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "compile": ("promptc.cli.compile", "compile a .pflow file to a .pfc artifact"),
    "run": ("promptc.cli.run", "run a workflow on inputs"),
    "eval": ("promptc.cli.eval", "evaluate a workflow on a dataset"),
    "optimize": ("promptc.cli.optimize", "train the prompts of a workflow"),
    "inspect": ("promptc.cli.inspect", "show the params, history and scores of a .pfc"),
    "lsp": ("promptc.cli.lsp", "the .pflow language server for editors (stdio)"),
}


def build_parser() -> argparse.ArgumentParser:
    from promptc import __version__
    from promptc.cli import logs

    parser = argparse.ArgumentParser(prog="promptc", description="Compile and train LLM workflows.")
    parser.add_argument("--version", action="version", version=f"promptc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        mod.add_arguments(p)
        if name != "lsp":
            logs.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Ctrl-C cancels calls in flight; a call that litellm had started on a worker thread
    # leaves its provider coroutine unawaited, and Python would say so on the way out
    warnings.filterwarnings("ignore", message=r"coroutine '.*acompletion' was never awaited", category=RuntimeWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help(sys.stderr)
        return 2
    if args.command != "lsp":
        from promptc.cli import logs

        logs.configure(args.verbose, args.log_file)
    return int(args._module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
