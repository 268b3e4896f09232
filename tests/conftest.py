"""Suite-wide hooks: tests marked `local_model` run only after the embedded model has
answered once in a child process (see tests/native_probe.py), so a native crash fails
those tests with its signal instead of killing the test run."""

from __future__ import annotations

import pytest

from tests.native_probe import crash_report


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("local_model") is None:
        return
    from promptc.runtime import local

    if local.available("default") is not None:
        return  # the test's own skip says why
    report = crash_report()
    if report is not None:
        pytest.fail(report, pytrace=False)
