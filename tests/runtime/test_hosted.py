"""hosted.complete: litellm's success logging only when a callback listens; an unpriced
model's price is looked up once, then it is free."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from promptc.runtime import hosted, providers
from promptc.runtime.engine import Engine
from promptc.runtime.records import CallRequest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

MOCK = {"mock_response": "hosted answer", "api_key": "sk-test-not-a-real-key-000"}


def kwargs(model: str = "openai/gpt-4o-mini", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "q"}], "num_retries": 0, **MOCK, **extra}


@pytest.fixture
def litellm():
    return providers.ensure_litellm()


@pytest.fixture
def success_handlers(monkeypatch, litellm):
    """Counts litellm's success handlers that ran (they run on litellm's logging thread)."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    ran: list[str] = []
    real = Logging.success_handler

    def counting(self, *a, **kw):
        ran.append(self.model)
        return real(self, *a, **kw)

    monkeypatch.setattr(Logging, "success_handler", counting)
    return ran


def settle(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_no_success_logging_when_no_callback_listens(litellm, success_handlers, monkeypatch):
    for name in ("callbacks", "success_callback", "_async_success_callback"):
        monkeypatch.setattr(litellm, name, [])
    resp = hosted.complete(litellm, kwargs())
    assert resp.choices[0].message.content == "hosted answer"
    assert hosted.cost(litellm, resp, "openai/gpt-4o-mini") > 0  # the price is still litellm's
    litellm.completion(**kwargs())  # the plain call for contrast: its handler does run
    settle(lambda: len(success_handlers) >= 1)
    time.sleep(0.2)
    assert len(success_handlers) == 1


def test_a_registered_callback_still_sees_every_call(litellm, monkeypatch):
    seen: list[str] = []

    def callback(kw, response, start, end):
        seen.append(response.choices[0].message.content)

    monkeypatch.setattr(litellm, "success_callback", [callback])
    hosted.complete(litellm, kwargs())
    hosted.complete(litellm, kwargs())
    settle(lambda: len(seen) >= 2)
    assert seen == ["hosted answer", "hosted answer"]


def test_an_unpriced_model_is_registered_free_after_its_first_call(litellm):
    model = "openai/promptc-test-unpriced-model"
    assert model not in providers.registered_prices()
    with FakeOpenAI(lambda body: "LOC") as srv:
        engine = Engine(cache=None, retries=0, extra_params={"api_base": srv.base_url, "api_key": "sk-none"})
        req = CallRequest(model=model, messages=({"role": "user", "content": "q"},))
        first = asyncio.run(engine.call(req))
        assert first.ok and first.cost == 0.0
        assert providers.registered_prices()[model] == (0.0, 0.0)
        resp = hosted.complete(litellm, {**engine._kwargs(req)})
        assert resp._hidden_params["response_cost"] == 0.0  # priced from the table, no search
        engine.close()


def test_a_priced_model_is_never_registered(litellm):
    before = providers.registered_prices()
    resp = hosted.complete(litellm, kwargs("openai/gpt-4o-mini"))
    assert hosted.cost(litellm, resp, "openai/gpt-4o-mini") > 0
    assert "openai/gpt-4o-mini" not in providers.registered_prices()
    assert providers.registered_prices() == before
