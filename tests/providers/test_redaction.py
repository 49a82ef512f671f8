"""Secrets never show: not in an error's text or repr, not in a traceback, not in a log line.

Keys go in headers, but providers echo them back in error messages; the Telegram token is in every
URL, and httpx logs URLs. Each test makes a client fail (or succeed, for httpx's own log line) and
looks for the secret in everything an operator or Sentry could see.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator

import pytest

from jobs.video.catalog import Options
from jobs.video.kie import KieClient
from jobs.video.models import get_model
from jobs.video.prompt import PromptGenerator
from simulator.testing import RunningSimulator
from worker.errors import ProviderError
from worker.redaction import MASK, RedactingFilter, clear_secrets, register_secrets
from worker.telegram import TelegramNotifier

from .conftest import SHORT_TIMEOUT, Canned, Stub, make_key

KIE_SECRET = "kie-redaction-secret-5f2a9c"
OPENAI_SECRET = "opaque-openai-secret-91bd77"  # not sk-shaped: only registration can catch it
TG_TOKEN = "555666777:AAF-redaction-token_0123456789"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged at DEBUG and up, through the filter every real handler carries."""
    register_secrets([KIE_SECRET, OPENAI_SECRET])
    redacting = RedactingFilter()
    caplog.handler.addFilter(redacting)
    caplog.set_level(logging.DEBUG)
    # `install_logging` (run by CLI and worker tests in this process) quiets these loggers;
    # here we want every line they would print, to prove none carries a secret.
    for name in ("httpx", "httpx2", "httpcore", "openai"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    caplog.handler.removeFilter(redacting)


def visible(err: ProviderError, logs: pytest.LogCaptureFixture) -> str:
    """What anyone could read: text, repr, fields, traceback, and the log with the traceback."""
    logging.getLogger("tests.redaction").error("step failed: %s", err, exc_info=err)
    logging.getLogger("tests.redaction").warning("%r", err)
    parts = [str(err), repr(err), err.message, err.user_message, str(err.code)]
    parts.append("".join(traceback.format_exception(err)))
    parts.append(logs.text)
    parts.extend(r.getMessage() + (r.exc_text or "") for r in logs.records)
    return "\n".join(parts)


def test_kie_key_echoed_by_the_provider(stub: Stub, logs: pytest.LogCaptureFixture) -> None:
    stub.answer(
        Canned(401, {"code": 401, "msg": f"Invalid API key {KIE_SECRET} (Bearer {KIE_SECRET})"})
    )
    kie = KieClient(stub.url, timeout=2.0)
    with pytest.raises(ProviderError) as info:
        spec = get_model("bytedance/seedance-2-mini")
        inputs = spec.build(Options(), prompt="p", image_url="https://x.test/a.jpg")
        kie.create_task(make_key("kie", KIE_SECRET), spec, inputs)
    shown = visible(info.value, logs)
    assert KIE_SECRET not in shown and MASK in shown
    assert KIE_SECRET not in repr(kie)


def test_kie_timeout_and_auth_against_the_simulator(
    sim: RunningSimulator, logs: pytest.LogCaptureFixture
) -> None:
    key = make_key("kie", KIE_SECRET)
    kie = KieClient(sim.kie_url, timeout=SHORT_TIMEOUT)
    sim.configure({"kie": {"keys": {KIE_SECRET: {"revoked": True}}}})
    with pytest.raises(ProviderError) as auth:
        kie.credit_balance(key)
    sim.configure({"kie": {"keys": {KIE_SECRET: {"revoked": False}}, "rate_timeout": 1.0}})
    with pytest.raises(ProviderError) as timeout:
        kie.credit_balance(key)
    for err in (auth.value, timeout.value):
        assert KIE_SECRET not in visible(err, logs)


def test_openai_key_echoed_by_the_provider(stub: Stub, logs: pytest.LogCaptureFixture) -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {OPENAI_SECRET}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    stub.answer(Canned(401, body))
    gen = PromptGenerator(stub.url, model="gpt-4o-mini", timeout=2.0)
    with pytest.raises(ProviderError) as info:
        gen.generate(make_key("openai", OPENAI_SECRET), title="Mug", description=None)
    shown = visible(info.value, logs)
    assert OPENAI_SECRET not in shown and MASK in shown
    assert OPENAI_SECRET not in repr(gen)


def test_openai_errors_against_the_simulator(
    sim: RunningSimulator, logs: pytest.LogCaptureFixture
) -> None:
    gen = PromptGenerator(sim.openai_url, model="gpt-4o-mini", timeout=SHORT_TIMEOUT)
    key = make_key("openai", OPENAI_SECRET)
    errors = []
    for patch in (
        {"openai": {"keys": {OPENAI_SECRET: {"revoked": True}}}},
        {"openai": {"keys": {OPENAI_SECRET: {"revoked": False, "quota_exhausted": True}}}},
        {"openai": {"keys": {OPENAI_SECRET: None}, "rate_timeout": 1.0}},
    ):
        sim.configure(patch)
        with pytest.raises(ProviderError) as info:
            gen.generate(key, title="Mug", description=None)
        errors.append(info.value)
    assert [e.error_class for e in errors] == ["AUTH", "BILLING", "TEMPORARY"]
    for err in errors:
        assert OPENAI_SECRET not in visible(err, logs)


@pytest.mark.parametrize("token", [TG_TOKEN, "not-a-bot-shaped-token-xyz"])
def test_telegram_token_in_the_url_never_shows(
    sim: RunningSimulator, logs: pytest.LogCaptureFixture, token: str
) -> None:
    clear_secrets()  # the notifier must protect its token by itself
    tg = TelegramNotifier(sim.telegram_url, token, timeout=SHORT_TIMEOUT)
    assert token not in repr(tg)
    tg.get_me()  # httpx logs "HTTP Request: POST .../bot<token>/getMe" at INFO
    assert any("HTTP Request" in r.getMessage() for r in logs.records)
    errors = []
    sim.configure({"telegram": {"bot_token": "111:other-token-abcdefghijk"}})
    with pytest.raises(ProviderError) as auth:
        tg.send_message(1, "hi")
    errors.append(auth.value)
    sim.configure({"telegram": {"bot_token": None, "rate_timeout": 1.0}})
    with pytest.raises(ProviderError) as timeout:
        tg.get_me()
    errors.append(timeout.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProviderError) as refused:
        TelegramNotifier(f"http://127.0.0.1:{port}", token, timeout=1.0).get_me()
    errors.append(refused.value)
    for err in errors:
        shown = visible(err, logs)
        assert token not in shown
        assert token.split(":")[-1] not in shown
