"""The one Retry-After parser every provider client uses (worker.http.retry_after)."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from worker.http import MAX_RETRY_AFTER_SECONDS, retry_after

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(httpx.Headers(headers)) == expected


def test_an_http_date_is_seconds_from_now() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    wait = retry_after(httpx.Headers({"Retry-After": when}))
    assert wait is not None and 110 <= wait <= 121


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "315360000"},  # ten years
        {"retry-after-ms": "1e15"},
        {"Retry-After": email.utils.formatdate(time.time() + 86_400 * 365 * 30, usegmt=True)},
    ],
)
def test_a_huge_wait_is_capped(headers: dict[str, str]) -> None:
    # An uncapped value would cool a key for years.
    assert retry_after(httpx.Headers(headers)) == MAX_RETRY_AFTER_SECONDS == 3600.0


def test_the_body_value_wins_when_it_is_a_number() -> None:
    headers = httpx.Headers({"Retry-After": "5"})
    assert retry_after(headers, body_seconds=3) == 3.0
    assert retry_after(headers, body_seconds=10**9) == MAX_RETRY_AFTER_SECONDS
    assert retry_after(headers, body_seconds="3") == 5.0  # not a number: the header decides
    assert retry_after(headers, body_seconds=True) == 5.0
    assert retry_after(headers, body_seconds=float("nan")) == 5.0
    assert retry_after(None, body_seconds=None) is None
    assert retry_after(None, body_seconds=-1) == 0.0
