"""A huge Retry-After cools a key down for the cap, not for years, and the key says so
(issue 22, finding 3; the cap itself is worker.http.MAX_RETRY_AFTER_SECONDS)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
import redis
from pydantic import SecretStr

from tests.conftest import REDIS_URL
from worker import http
from worker.config import ApiKey
from worker.errors import ErrorClass, ProviderError
from worker.keys import KeyPool, KeyState

T0 = 1_700_000_000.0


@pytest.fixture
def pool(redis_namespace: str) -> Iterator[KeyPool]:
    client = redis.Redis.from_url(REDIS_URL)
    keys = [ApiKey("kie", n, SecretStr(f"secret-{n}-{uuid4().hex}")) for n in ("a", "b")]
    yield KeyPool(client, redis_namespace, keys, clock=lambda: T0)
    client.close()


@pytest.mark.parametrize("header", ["31536000000", "1e300", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_huge_retry_after_is_capped_and_the_key_says_so(pool: KeyPool, header: str) -> None:
    wait = http.retry_after({"retry-after": header})
    assert wait == http.MAX_RETRY_AFTER_SECONDS
    key = pool.acquire("kie")
    error = ProviderError(ErrorClass.RATE_LIMIT, "HTTP 429", provider="kie", retry_after=wait)
    pool.report_failure(key, error)
    (status,) = [s for s in pool.statuses() if s.name == key.name]
    assert status.state is KeyState.COOLING
    assert status.cooling_until == pytest.approx(T0 + http.MAX_RETRY_AFTER_SECONDS)
    assert status.last_error is not None and "capped" in status.last_error


def test_an_ordinary_retry_after_is_not_marked(pool: KeyPool) -> None:
    key = pool.acquire("kie")
    wait = http.retry_after({"retry-after": "30"})
    pool.report_failure(
        key, ProviderError(ErrorClass.RATE_LIMIT, "HTTP 429", provider="kie", retry_after=wait)
    )
    (status,) = [s for s in pool.statuses() if s.name == key.name]
    assert status.last_error == "RATE_LIMIT: HTTP 429"
