"""PromptGenerator through the official SDK against the simulator: every class, every refusal form."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from jobs.video.prompt import PromptGenerator, clean_prompt
from jobs.video.settings import video_settings
from simulator.config import QUOTA_CODES
from simulator.testing import RunningSimulator
from worker.config import Settings
from worker.errors import ErrorClass, ProviderError

from .conftest import SHORT_TIMEOUT, Canned, Stub, make_key

SECRET = "sk-test-openai-secret-0123456789"
KEY = make_key("openai", SECRET)


def generator(
    url: str, *, model: str = "gpt-4o-mini", timeout: float = 5.0, **kw: int
) -> PromptGenerator:
    return PromptGenerator(url, model=model, timeout=timeout, **kw)


def raises(cls: ErrorClass, gen: PromptGenerator, title: str = "Red mug") -> ProviderError:
    with pytest.raises(ProviderError) as info:
        gen.generate(KEY, title=title, description=None)
    err = info.value
    assert err.error_class is cls, repr(err)
    assert err.provider == "openai" and err.key_name == KEY.name
    return err


@pytest.fixture
def gen(sim: RunningSimulator) -> Iterator[PromptGenerator]:
    instance = generator(sim.openai_url)
    yield instance
    instance.close()


def completion(content: str | None, *, finish: str = "stop", refusal: str | None = None) -> Canned:
    return Canned(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": finish,
                }
            ],
        },
    )


def api_error(status: int, type_: str | None, code: str | None, **headers: str) -> Canned:
    body = {"error": {"message": "stub error", "type": type_, "param": None, "code": code}}
    return Canned(status, body, headers=headers)


# --- the happy path ----------------------------------------------------------------------------


def test_generates_a_prompt(sim: RunningSimulator, gen: PromptGenerator) -> None:
    prompt = gen.generate(KEY, title="Red ceramic mug", description="Glossy, 350 ml")
    assert "Red ceramic mug" in prompt
    assert prompt == " ".join(prompt.split()) and len(prompt) <= 1500
    assert len(sim.calls("openai")) == 1


def test_prompt_is_cut_at_a_word_boundary(sim: RunningSimulator) -> None:
    prompt = generator(sim.openai_url, max_chars=60).generate(KEY, title="Mug", description=None)
    assert 0 < len(prompt) <= 60
    full = generator(sim.openai_url).generate(KEY, title="Mug", description=None)
    assert full.startswith(prompt) and full[len(prompt)] == " "


def test_request_shape(stub: Stub) -> None:
    stub.answer(completion('  "A slow   orbit\n around the mug."  '))
    gen = generator(stub.url, max_chars=321)
    out = gen.generate(KEY, title="Mug", description="  Blue ")
    assert out == "A slow orbit around the mug."
    seen = stub.seen[0]
    assert (seen.method, seen.path) == ("POST", "/chat/completions")
    assert seen.headers["content-type"] == "application/json"
    body = json.loads(seen.body)
    assert set(body) == {"model", "messages"}
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": gen.system_prompt()}
    assert "under 321 characters" in gen.system_prompt()
    assert body["messages"][1]["content"] == "Product title: Mug\nProduct description: Blue"
    assert stub.seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_one_client_per_key_without_retries(sim: RunningSimulator, gen: PromptGenerator) -> None:
    other = make_key("openai", "sk-other-secret-abcdef", name="other")
    seen: list[openai.OpenAI] = []
    threads = [threading.Thread(target=lambda: seen.append(gen._client(KEY))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    client = seen[0]
    assert client.max_retries == 0
    assert client.timeout == openai.Timeout(connect=5.0, read=5.0, write=5.0, pool=5.0)
    assert gen._client(other) is not client
    gen.close()


@given(st.text(), st.integers(min_value=1, max_value=200))
def test_clean_prompt_properties(text: str, limit: int) -> None:
    out = clean_prompt(text, limit)
    assert len(out) <= limit
    assert out == " ".join(out.split())
    collapsed = " ".join(text.split())
    if len(collapsed) <= limit and not collapsed.startswith(("'", '"', "\u201c")):
        assert out == collapsed


# --- refusals: USER_ERROR in every form --------------------------------------------------------


@pytest.mark.parametrize("mode", ["http400", "invalid_prompt", "refusal", "content_filter"])
def test_refusals_are_user_errors(sim: RunningSimulator, gen: PromptGenerator, mode: str) -> None:
    sim.configure({"openai": {"refusal_mode": mode}})
    err = raises(ErrorClass.USER_ERROR, gen, title="A FORBIDDEN product")
    assert "refused" in err.user_message


def test_refusal_cycle(sim: RunningSimulator, gen: PromptGenerator) -> None:
    for _ in range(4):
        raises(ErrorClass.USER_ERROR, gen, title="FORBIDDEN")


# --- billing, rate limits, auth, availability --------------------------------------------------


@pytest.mark.parametrize("code", QUOTA_CODES)
def test_quota_429_is_billing(sim: RunningSimulator, gen: PromptGenerator, code: str) -> None:
    sim.configure({"openai": {"keys": {SECRET: {"quota_exhausted": True, "quota_code": code}}}})
    err = raises(ErrorClass.BILLING, gen)
    assert err.status == 429 and err.retry_after is None
    assert len(sim.calls("openai")) == 1  # the SDK did not retry


def test_quota_by_type_only_is_billing(stub: Stub) -> None:
    stub.answer(api_error(429, "insufficient_quota", None))
    raises(ErrorClass.BILLING, generator(stub.url))


def test_rate_limit_uses_retry_after_ms(sim: RunningSimulator, gen: PromptGenerator) -> None:
    sim.configure({"openai": {"rate_429": 1.0, "retry_after_seconds": 2.5}})
    err = raises(ErrorClass.RATE_LIMIT, gen)
    assert err.retry_after == 2.5 and err.code == "rate_limit_exceeded"
    assert len(sim.calls("openai")) == 1


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "3"}, 3.0), ({}, None), ({"retry-after": "soon"}, None)],
)
def test_rate_limit_retry_after_seconds(
    stub: Stub, headers: dict[str, str], expected: float | None
) -> None:
    # Gap: the simulator always sends both headers.
    stub.answer(api_error(429, "requests", "rate_limit_exceeded", **headers))
    assert raises(ErrorClass.RATE_LIMIT, generator(stub.url)).retry_after == expected


def test_unknown_and_revoked_keys_are_auth(sim: RunningSimulator, gen: PromptGenerator) -> None:
    sim.configure({"openai": {"keys": {"sk-some-other-key-123456": {}}}})
    raises(ErrorClass.AUTH, gen)
    sim.configure({"openai": {"keys": {SECRET: {"revoked": True}}}})
    err = raises(ErrorClass.AUTH, gen)
    assert err.status == 401 and err.code == "invalid_api_key"


def test_permission_denied_is_auth(stub: Stub) -> None:
    # Gap: the simulator never answers 403.
    stub.answer(api_error(403, "invalid_request_error", "unsupported_country_region_territory"))
    raises(ErrorClass.AUTH, generator(stub.url))


def test_unknown_model_is_unavailable(sim: RunningSimulator) -> None:
    err = raises(ErrorClass.UNAVAILABLE, generator(sim.openai_url, model="gpt-nope"))
    assert err.code == "model_not_found"


def test_other_bad_request_is_internal(sim: RunningSimulator) -> None:
    err = raises(ErrorClass.INTERNAL, generator(sim.openai_url, model=""))
    assert err.status == 400


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (api_error(422, "invalid_request_error", None), ErrorClass.INTERNAL),
        (api_error(408, None, None), ErrorClass.TEMPORARY),
        (api_error(409, None, None), ErrorClass.TEMPORARY),
        (api_error(502, None, None), ErrorClass.TEMPORARY),
        (Canned(503, "<html>bad gateway</html>"), ErrorClass.TEMPORARY),
        (completion("   \n  "), ErrorClass.TEMPORARY),
        (completion(None), ErrorClass.TEMPORARY),
        (
            Canned(200, {"id": "x", "object": "chat.completion", "choices": []}),
            ErrorClass.TEMPORARY,
        ),
        (Canned(200, {"choices": "none"}), ErrorClass.TEMPORARY),
        (Canned(200, {"choices": [None]}), ErrorClass.TEMPORARY),
        (Canned(200, {"choices": [{"message": None}]}), ErrorClass.TEMPORARY),
        (Canned(200, {"choices": [{"message": {"content": 7}}]}), ErrorClass.TEMPORARY),
        (Canned(200, []), ErrorClass.TEMPORARY),
        (Canned(200, "<html>maintenance</html>"), ErrorClass.TEMPORARY),
        (Canned(200, b"{not json"), ErrorClass.TEMPORARY),
    ],
    ids=[
        "422",
        "408",
        "409",
        "502",
        "html-503",
        "blank",
        "null-content",
        "no-choices",
        "choices-not-a-list",
        "choice-not-an-object",
        "no-message",
        "content-not-text",
        "body-a-list",
        "html-200",
        "json-200-not-json",
    ],
)
def test_shapes_the_simulator_does_not_send(
    stub: Stub, answer: Canned, expected: ErrorClass
) -> None:
    # Gap: the simulator has no 408/409/422/502, HTML errors or empty completions.
    stub.answer(answer)
    raises(expected, generator(stub.url))
    assert len(stub.seen) == 1  # no SDK retry, even for 408/409/5xx


# --- server errors, timeouts, connection errors ------------------------------------------------


def test_server_errors_are_temporary(sim: RunningSimulator, gen: PromptGenerator) -> None:
    sim.configure({"openai": {"rate_5xx": 1.0}})
    for _ in range(3):
        err = raises(ErrorClass.TEMPORARY, gen)
        assert err.status in (500, 503)
    assert len(sim.calls("openai")) == 3


def test_timeout_is_temporary(sim: RunningSimulator) -> None:
    sim.configure({"openai": {"rate_timeout": 1.0}})
    err = raises(ErrorClass.TEMPORARY, generator(sim.openai_url, timeout=SHORT_TIMEOUT))
    assert "timed out" in err.message


def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raises(ErrorClass.TEMPORARY, generator(f"http://127.0.0.1:{port}/v1"))


def test_from_settings(sim: RunningSimulator) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_base_url=sim.openai_url,
        openai_api_keys=SecretStr(SECRET),
        openai_model="gpt-4.1-mini",
    )
    gen = PromptGenerator.from_settings(settings)
    assert gen.model == "gpt-4.1-mini"
    assert gen.generate(video_settings(settings).openai_keys[0], title="Mug", description=None)
    assert sim.calls("openai")[0]["model"] == "gpt-4.1-mini"
    gen.close()
