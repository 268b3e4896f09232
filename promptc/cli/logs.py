"""What the command line prints of logs: promptc's own, and only when asked.

By default nothing a library logs reaches the terminal: promptc's loggers print errors
only (what the optimizer refused is in the live display and the run's history, not log
lines), and no third-party logger is configured (bm25s sets its own to DEBUG; Python's
last-resort handler shows WARNING and above of loggers nobody configured, so third-party
libraries are held at ERROR too). `-v` shows promptc's INFO, `-vv` its DEBUG; `--log-file
FILE` writes everything at DEBUG, promptc's and the libraries', to FILE.
"""

from __future__ import annotations

import argparse
import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"
QUIET = ("bm25s", "LiteLLM", "litellm", "httpx", "httpcore", "urllib3", "asyncio", "filelock", "pygls")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="promptc's log: -v info, -vv debug")
    parser.add_argument("--log-file", metavar="FILE", help="write the full log (debug, libraries too) to FILE")


def configure(verbose: int = 0, log_file: str | None = None) -> None:
    own = logging.getLogger("promptc")
    own.setLevel(logging.DEBUG if (verbose > 1 or log_file) else logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.ERROR if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    console.setFormatter(logging.Formatter(FORMAT))
    console.set_name("promptc-console")
    own.handlers[:] = [h for h in own.handlers if h.get_name() != "promptc-console"] + [console]
    own.propagate = True  # to the root's handlers: the log file's, a test's capture
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if log_file else logging.ERROR)
    root = logging.getLogger()
    if not root.handlers:  # else Python's last-resort handler prints what reaches the root
        root.addHandler(logging.NullHandler())
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
