"""Run the embedded model once in a child process before any test loads it in-process.

llama.cpp is native code: if it crashes (a segfault in a CPU-specific kernel, say), it
takes the whole pytest process with it and no test reports. `crash_report()` runs one
real completion in a child process; when the child dies or fails, every `local_model`
test fails with the report (signal name and the child's last stderr lines) instead of
being run in-process, and the rest of the suite goes on.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys

COMPLETION = """
from promptc.runtime import local
answer = local.complete("default", [{"role": "user", "content": "Say hi."}], max_tokens=4)
model = local.get("default")
print("extra buffer types:", model.llm.model_params.use_extra_bufts, "tokens:", answer.completion_tokens)
"""


def child_report(code: str, timeout: float = 300) -> str | None:
    """None when `code` runs to a clean exit in a child Python, else what went wrong."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        return f"the embedded model did not answer within {timeout:.0f} s in a child process"
    if proc.returncode == 0:
        return None
    tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return f"the embedded model crashed in a child process ({name}):\n{tail}"
    return f"the embedded model failed in a child process (exit {proc.returncode}):\n{tail}"


@functools.cache
def crash_report() -> str | None:
    """The child-process check of the embedded model, run once per test session."""
    return child_report(COMPLETION)
