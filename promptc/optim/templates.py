"""The meta-prompts of training, kept as data in `templates/*.txt`.

Each file is a `string.Template` (`$name` fields) so that the `{placeholder}`s of the
prompts being trained pass through untouched. Control flow lives in the modules that
render them (backprop.py, backward.py, instruction.py); the wording lives here.

Files:
  loss.txt               the metric's verdict on one sample, the feedback on the output
  passthrough.txt        feedback annotated by a functional node (name and docstring)
  backward_system.txt    system message of every backward-engine call
  backward_llm.txt       one call per llm node per failing sample: JSON feedback for all feeds
  backward_feed.txt      the fallback: one call per feed when the JSON could not be parsed
  optimizer_system.txt   system message of the instruction optimizer
  optimizer_user.txt     the textual-gradient-descent meta-prompt
  optimizer_retry.txt    the stricter reminder sent once when no proposal could be extracted
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from string import Template

NAMES = (
    "loss", "passthrough", "backward_system", "backward_llm", "backward_feed",
    "optimizer_system", "optimizer_user", "optimizer_retry",
)


@functools.cache
def load(name: str) -> Template:
    if name not in NAMES:
        raise KeyError(f"no template {name!r}")
    text = resources.files("promptc.optim").joinpath("templates", f"{name}.txt").read_text("utf-8")
    return Template(text.rstrip("\n"))


def render(template: str, /, **fields: object) -> str:
    """Fill a template; a missing field is a programming error (KeyError)."""
    return load(template).substitute({k: "" if v is None else str(v) for k, v in fields.items()})


@functools.cache
def static_text(name: str) -> str:
    """The template's own wording, with its `$fields` removed (for absorption checks)."""
    return re.sub(r"\$\w+|\$\{\w+\}", " ", load(name).template)


@functools.cache
def headers(name: str) -> tuple[str, ...]:
    """The section headers ("## ...") of a template, lower-cased, fields removed."""
    out = []
    for line in load(name).template.splitlines():
        if line.startswith("## "):
            h = re.sub(r"\$\w+|`", "", line[3:]).strip().lower().rstrip(":")
            if h:
                out.append(h)
    return tuple(out)
