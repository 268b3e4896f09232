"""`Workflow.batch`: a row whose node raises what no handler expects fails alone."""

from __future__ import annotations

from promptc.compiler import compile_source
from promptc.runtime.workflow import PromptcRunError, Workflow

import pytest


class Touchy:
    """An input value that raises when compared (as a numpy array does in `bool(a == b)`)."""

    def __eq__(self, other):
        raise RuntimeError("cannot compare\nme")

    __hash__ = None


def workflow() -> Workflow:
    return Workflow(compile_source('workflow w(x: json) -> bool { return x == "a" }\n', "w.pflow"), engine=object())


def test_a_bad_row_fails_alone_with_its_node_named():
    with workflow() as wf:
        results = wf.batch([{"x": "a"}, {"x": Touchy()}, {"x": "b"}])
    assert [r.output for r in results] == [True, None, False]
    assert results[0].ok and results[2].ok
    bad = results[1]
    assert not bad.ok and bad.error.endswith(": internal error (RuntimeError: cannot compare me)")
    node = bad.error.split(":")[0]
    assert bad.trace.record(node).error == bad.error.split(": ", 1)[1]


def test_a_single_call_raises_the_run_error():
    with workflow() as wf:
        with pytest.raises(PromptcRunError, match="internal error .RuntimeError: cannot compare me"):
            wf(x=Touchy())
        assert wf(x="a") is True
