"""On the embedded model: a meta-prompt too long for the model's context is fitted and
completes, where it used to fail the call.

The model is loaded with the context of the failures the issue reports (2048, through
$PROMPTC_LOCAL_CTX) in a child process, so that the prompt is over the context with a few
thousand tokens (a meta-prompt over SmolLM2's full 8192 would take minutes of CPU to
evaluate) and the in-process model of the other tests keeps its own size. Skipped only
where llama_cpp or the weights are not installed (see tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from promptc.runtime import local

REASON = local.available("default")
pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(REASON is not None, reason=f"embedded model unavailable: {REASON}"),
]

CHILD = """
import asyncio, json
from promptc.optim import fit
from promptc.optim.instruction import meta_prompt, propose
from promptc.runtime.engine import Engine
from promptc.runtime.records import CallRequest
from tests.optim.helpers import trec_like
from tests.optim.test_fit import MEMORY, long_gradients

program = trec_like("local/default")
g = long_gradients(8)
rejected = [f"Rejected value {k}: " + "label every question as a place " * 12 for k in range(8)]
full = meta_prompt(program, program.param("instruction"), g, memory=MEMORY, rejected=rejected, limit=600)
engine = Engine(cache=None, timeout=600, retries=0)
whole = asyncio.run(engine.call(CallRequest(model="local/default", messages=full, max_tokens=214)))
prop = asyncio.run(propose(program, "instruction", g, engine, memory=MEMORY, rejected=rejected))
print(json.dumps({
    "context": fit.context_window("local/default"),
    "whole_error": whole.error,
    "rejections": list(prop.rejections),
    "calls": prop.calls,
    "reason": prop.reason,
    "sent_estimate": fit.message_tokens(prop.messages),
    "full_estimate": fit.message_tokens(full),
    "budget": fit.budget(fit.context_window("local/default"), 600 // 4 + 64),
    "sent": prop.messages[1]["content"],
}))
"""


def test_a_meta_prompt_longer_than_the_context_is_fitted_and_completes():
    env = {**os.environ, "PROMPTC_LOCAL_CTX": "2048", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=900, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["context"] == 2048
    # sent whole, the meta-prompt is over the context and the call fails (what runs used to see)
    assert out["whole_error"] and "context window" in out["whole_error"]
    # fitted, the same proposal call completes: whatever the filters say of the reply, no call failed
    assert out["calls"] >= 1 and "call-failed" not in out["rejections"], out
    assert out["sent_estimate"] <= out["budget"] < out["full_estimate"]
    assert "<current>\nClassify the question.\n</current>" in out["sent"]
