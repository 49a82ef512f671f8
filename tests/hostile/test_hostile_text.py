"""Hostile text: secrets that must not survive redaction (issue 22, finding 11) and request text
that must be refused or cleaned before anything is stored (finding 10)."""

from __future__ import annotations

import pytest

from worker import validation as v
from worker.errors import InvalidRequest
from worker.redaction import MASK, clear_secrets, redact

TOKEN_TAIL = "AAH" + "x7Kq_2-bZr9LmN0pQsT4uVwXyZ1aB3c"  # 34 characters, as Telegram issues them


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> None:
    clear_secrets()  # each case must be caught by shape, not because it was registered


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # the bot token URL-encoded in a URL (httpx, a proxy log)
        (f"GET https://api.telegram.org/bot123456%3A{TOKEN_TAIL}/getMe", TOKEN_TAIL),
        (f"GET https://api.telegram.org/bot123456%3a{TOKEN_TAIL}/getMe", TOKEN_TAIL),
        # a bare bot token never registered as a secret
        (f"token is 123456789:{TOKEN_TAIL} here", TOKEN_TAIL),
        (f"123456789:{TOKEN_TAIL}", TOKEN_TAIL),
        # database passwords with @ or /
        ("connect to postgresql://app:pa@ss-w0rd@db.internal:5432/worker failed", "ss-w0rd"),
        ("connect to postgresql://app:pa@ss-w0rd@db.internal:5432/worker failed", "pa@ss"),
        ("connect to postgresql://app:pa/ss-w0rd@db.internal:5432/worker failed", "pa/ss-w0rd"),
        ("redis://:s3cr/et@@x@redis.internal:6379/0", "s3cr/et"),
        ("dsn host=db user=app password=hunter2-pass dbname=worker", "hunter2-pass"),
    ],
)
def test_redaction_masks_secret_shapes(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out, out
    assert MASK in out


def test_redaction_keeps_plain_text_and_hosts() -> None:
    text = "job 42 at 12:30:45 on https://example.test/a/b?x=1 (postgresql://db.internal/worker)"
    assert redact(text) == text
    # the host of a URL with a masked password is still shown
    assert "db.internal:5432/worker" in redact("postgresql://app:pa/ss@db.internal:5432/worker")


@pytest.mark.parametrize("field", ["title", "description"])
@pytest.mark.parametrize("bad", ["mug \ud800", "\udfff", "a\udc80b"])
def test_lone_surrogate_is_invalid_request(field: str, bad: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        v.text(field, bad, max_len=500)
    assert err.value.field == field


@pytest.mark.parametrize("bad", ["https://example.test/\ud800.jpg", "https://ex\udfffample.test/"])
def test_lone_surrogate_in_url_is_invalid_request(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        v.http_url("image_url", bad)


@pytest.mark.parametrize(
    "bad",
    [
        "mug\u0085next",  # C1 NEL
        "mug\u009b31m",  # C1 CSI: a terminal escape
        "mug\u202eevil",  # right-to-left override
        "mug\u2066x\u2069",  # bidi isolates
        "mug\u202aok\u202c",  # embedding and pop
    ],
)
def test_c1_and_bidi_controls_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        v.text("title", bad, max_len=500)
    assert "control" in str(err.value) or "direction" in str(err.value)


@pytest.mark.parametrize(
    "bad", ["mug\u200b", "m\u200cu\u200dg", "\ufeffmug", "mu\u2060g", "\u200fmug", "mu\u00adg"]
)
def test_zero_width_characters_are_removed(bad: str) -> None:
    assert v.text("title", bad, max_len=500) == "mug"


def test_zero_width_only_text_is_empty() -> None:
    with pytest.raises(InvalidRequest):
        v.text("title", "\u200b\u200b", max_len=500)


@pytest.mark.parametrize(
    "bad", ["https://example.test/\u202egpj.exe", "https://exa\u200bmple.test/"]
)
def test_url_with_invisible_characters_is_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        v.http_url("image_url", bad)


def test_ordinary_text_passes_unchanged() -> None:
    text = "Кружка «Red» — 350 ml\n\tдля кофе ☕ 👩‍👩‍👧"  # the emoji's zero-width joiners stay
    assert v.text("description", text, max_len=500) == text
