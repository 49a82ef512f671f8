"""The key pool against a real Redis: rotation, cooldowns, quarantine, pacing, many processes.

Each test works in its own namespace (``test-<uuid>``) and deletes its keys afterwards; the Redis
is shared with other test runs, so nothing here flushes a database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from uuid import uuid4

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from worker.config import ApiKey, RateLimit, Settings
from worker.errors import ErrorClass, NoKeyAvailable, ProviderError, WorkerError
from worker.keys import KeyPool, KeyState, UnknownKey

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000.0


class FakeClock:
    """A clock the test moves by hand, so cooldown and pacing times are exact."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_keys(provider: str, *names: str) -> list[ApiKey]:
    return [
        ApiKey(provider, n, SecretStr(f"sk-secret-{provider}-{n}-{uuid4().hex}")) for n in names
    ]


def error(
    cls: ErrorClass, message: str = "boom", retry_after: float | None = None
) -> ProviderError:
    return ProviderError(cls, message, provider="kie", retry_after=retry_after)


def cleanup(client: redis.Redis, namespace: str) -> None:
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(REDIS_URL)
    c.ping()
    yield c
    c.close()


@pytest.fixture
def ns(client: redis.Redis) -> Iterator[str]:
    namespace = f"test-{uuid4().hex}"
    yield namespace
    cleanup(client, namespace)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pace_scores(client: redis.Redis, ns: str, provider: str, name: str, purpose: str) -> list[int]:
    """Recorded hand-out times (integer µs) of one key and purpose, ascending."""
    key = f"{ns}:keys:{provider}:{name}:pace:{purpose}"
    rows = cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))
    return sorted(int(score) for _, score in rows)


def assert_paced(scores: list[int], limit: RateLimit) -> None:
    """No window of ``limit.seconds`` holds more than ``limit.count`` of the times."""
    window_us = round(limit.seconds * 1e6)
    for first, later in zip(scores, scores[limit.count :], strict=False):
        assert later - first >= window_us, (first, later, limit)


# -- rotation -------------------------------------------------------------------------------


def test_lru_rotation_spreads_load_evenly(client: redis.Redis, ns: str) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b", "c"))
    names = [pool.acquire("kie").name for _ in range(30)]
    assert names[:6] == ["a", "b", "c", "a", "b", "c"]
    assert Counter(names) == {"a": 10, "b": 10, "c": 10}
    assert [s.uses for s in pool.statuses()] == [10, 10, 10]


def test_lru_with_identical_timestamps_still_rotates(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b"), clock=clock)
    assert [pool.acquire("kie").name for _ in range(4)] == ["a", "b", "a", "b"]


def test_providers_and_has_keys(client: redis.Redis, ns: str) -> None:
    pool = KeyPool(client, ns, [*make_keys("openai", "o1"), *make_keys("kie", "k1", "k2")])
    assert pool.providers() == ["openai", "kie"]
    assert pool.has_keys("kie") and pool.has_keys("openai")
    assert not pool.has_keys("telegram")
    assert pool.acquire("openai").provider == "openai"


# -- cooldowns -------------------------------------------------------------------------------


def test_cooldown_only_extends(client: redis.Redis, ns: str, clock: FakeClock) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b"), clock=clock)
    a = pool.acquire("kie")
    pool.report_failure(a, error(ErrorClass.RATE_LIMIT, retry_after=100))
    pool.report_failure(a, error(ErrorClass.RATE_LIMIT, retry_after=1))
    assert pool.extend_cooldown("kie", "a", T0 + 50) == pytest.approx(T0 + 100)
    status = pool.statuses()[0]
    assert status.state is KeyState.COOLING
    assert status.cooling_until == pytest.approx(T0 + 100)
    assert status.errors == 2 and status.last_error == "RATE_LIMIT: boom"

    # While a cools, only b is handed out; once its cooldown ends, a is back.
    assert {pool.acquire("kie").name for _ in range(5)} == {"b"}
    clock.advance(99.9)
    assert pool.acquire("kie").name == "b"
    clock.advance(0.2)
    assert pool.acquire("kie").name == "a"
    assert pool.statuses()[0].state is KeyState.ACTIVE

    assert pool.extend_cooldown("kie", "a", clock.now + 30) == pytest.approx(clock.now + 30)


def test_rate_limit_without_retry_after_uses_backoff(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a"), clock=clock)
    pool.report_failure(pool.acquire("kie"), error(ErrorClass.RATE_LIMIT), backoff=7.5)
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie")
    assert info.value.retry_at == pytest.approx(T0 + 7.5)
    assert info.value.reason.startswith("1 key cooling down")


def test_other_classes_count_errors_but_leave_state(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a"), clock=clock)
    key = pool.acquire("kie")
    for cls in (ErrorClass.TEMPORARY, ErrorClass.USER_ERROR, ErrorClass.UNAVAILABLE):
        pool.report_failure(key, error(cls, "x" * 500))
    pool.report_success(key)
    status = pool.statuses()[0]
    assert status.state is KeyState.ACTIVE and status.errors == 3
    assert status.last_error is not None and status.last_error.startswith("UNAVAILABLE: xxx")
    assert len(status.last_error) <= len("UNAVAILABLE: ") + 200
    assert pool.acquire("kie").name == "a"


# -- quarantine and disable -----------------------------------------------------------------


def test_quarantined_and_disabled_keys_are_never_handed_out(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b", "c", "d"), clock=clock)
    pool.report_failure(pool.acquire_named("kie", "a"), error(ErrorClass.AUTH, "401 unauthorized"))
    pool.report_failure(pool.acquire_named("kie", "b"), error(ErrorClass.BILLING, "402 credits"))
    pool.disable("c", reason="rotating this account")
    assert {pool.acquire("kie").name for _ in range(20)} == {"d"}

    by_name = {s.name: s for s in pool.statuses()}
    assert by_name["a"].state is KeyState.QUARANTINED
    assert by_name["a"].reason == "AUTH: 401 unauthorized"
    assert by_name["a"].since == pytest.approx(T0)
    assert by_name["b"].reason == "BILLING: 402 credits"
    assert (
        by_name["c"].state is KeyState.DISABLED and by_name["c"].reason == "rotating this account"
    )

    # A second failure keeps the first reason and time: that is when the key died.
    clock.advance(10)
    pool.report_failure(pool.acquire_named("kie", "a"), error(ErrorClass.BILLING, "later"))
    status = pool.statuses()[0]
    assert status.reason == "AUTH: 401 unauthorized" and status.since == pytest.approx(T0)

    pool.disable("d")
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie")
    assert info.value.retry_at is None
    assert info.value.reason.startswith("2 keys quarantined (auth, billing), 2 disabled")

    for name in ("a", "b", "c", "d"):
        assert pool.enable(name, "kie").state is KeyState.ACTIVE
    assert {pool.acquire("kie").name for _ in range(8)} == {"a", "b", "c", "d"}


def test_enable_clears_cooldown_and_operator_lookups(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, [*make_keys("kie", "a", "shared"), *make_keys("openai", "shared")])
    pool.extend_cooldown("kie", "a", time.time() + 3600)
    status = pool.enable("a")
    assert status.state is KeyState.ACTIVE and status.cooling_until is None
    with pytest.raises(UnknownKey, match="configured for kie and openai"):
        pool.disable("shared")
    assert pool.disable("shared", "openai").state is KeyState.DISABLED
    with pytest.raises(UnknownKey, match="no key named 'nope'"):
        pool.enable("nope")


def test_manual_quarantine_reason_is_shown(client: redis.Redis, ns: str) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a"))
    pool.quarantine("kie", "a", "suspected leak")
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie")
    assert info.value.retry_at is None
    assert info.value.reason.startswith("1 key quarantined (suspected leak)")
    assert pool.statuses()[0].reason == "suspected leak"


# -- acquire_named ---------------------------------------------------------------------------


def test_acquire_named_ignores_quarantine_but_honours_cooldown(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b"), clock=clock)
    pool.quarantine("kie", "a", "BILLING: 402")
    pool.disable("b")
    assert pool.acquire_named("kie", "a").name == "a"
    assert pool.acquire_named("kie", "b").name == "b"

    pool.extend_cooldown("kie", "a", T0 + 20)
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire_named("kie", "a", "query")
    assert info.value.retry_at == pytest.approx(T0 + 20)
    assert "key a is cooling down" in info.value.reason
    clock.advance(20)
    assert pool.acquire_named("kie", "a", "query").name == "a"


def test_acquire_named_honours_pacing(client: redis.Redis, ns: str, clock: FakeClock) -> None:
    limits = {("kie", "query"): RateLimit(2, 1)}
    pool = KeyPool(client, ns, make_keys("kie", "a"), limits, clock=clock)
    pool.acquire_named("kie", "a", "query")
    clock.advance(0.25)
    pool.acquire_named("kie", "a", "query")
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire_named("kie", "a", "query")
    assert info.value.retry_at == pytest.approx(T0 + 1)
    assert "query pace limit (2/1s)" in info.value.reason
    assert pool.acquire_named("kie", "a", "other").name == "a"  # unpaced purpose


def test_acquire_named_unknown_key(client: redis.Redis, ns: str) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a"))
    with pytest.raises(UnknownKey) as info:
        pool.acquire_named("kie", "gone")
    assert isinstance(info.value, KeyError) and isinstance(info.value, WorkerError)
    assert str(info.value) == (
        "no kie key named 'gone' is configured (was it removed from KIE_API_KEYS?)"
    )
    with pytest.raises(UnknownKey):
        pool.acquire_named("openai", "a")


# -- NoKeyAvailable.retry_at -----------------------------------------------------------------


def test_retry_at_for_cooldowns_is_the_earliest_end(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b", "c"), clock=clock)
    pool.extend_cooldown("kie", "a", T0 + 30)
    pool.extend_cooldown("kie", "b", T0 + 12.5)
    pool.report_failure(pool.acquire_named("kie", "c"), error(ErrorClass.BILLING, "no credits"))
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie")
    assert info.value.retry_at == pytest.approx(T0 + 12.5)
    assert info.value.reason == (
        "2 keys cooling down, 1 quarantined (billing); one is free again in 12.5 s"
    )
    assert "no kie key can serve now" in str(info.value)


def test_retry_at_for_pacing_is_when_the_window_frees(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    limits = {("kie", "create"): RateLimit(3, 10)}
    pool = KeyPool(client, ns, make_keys("kie", "a", "b"), limits, clock=clock)
    for _ in range(3):  # a@0 b@0 a@1 b@1 a@2 b@2
        pool.acquire("kie", "create")
        pool.acquire("kie", "create")
        clock.advance(1)
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie", "create")
    assert info.value.retry_at == pytest.approx(T0 + 10)
    assert info.value.reason.startswith("2 keys at the create pace limit (3/10s)")
    assert pool.acquire("kie", "default").name == "a"  # another purpose is not paced

    clock.now = T0 + 10
    assert pool.acquire("kie", "create").name in {"a", "b"}

    # Pacing and a longer cooldown on the same key: the later of the two counts.
    pool.extend_cooldown("kie", "a", T0 + 40)
    pool.extend_cooldown("kie", "b", T0 + 40)
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie", "create")
    assert info.value.retry_at == pytest.approx(T0 + 40)


def test_retry_at_none_when_all_quarantined_or_no_keys(client: redis.Redis, ns: str) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a", "b"))
    pool.report_failure(pool.acquire("kie"), error(ErrorClass.AUTH, "401"))
    pool.report_failure(pool.acquire("kie"), error(ErrorClass.AUTH, "403"))
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie")
    assert info.value.retry_at is None
    assert info.value.reason.startswith("2 keys quarantined (auth)")

    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("openai")
    assert info.value.retry_at is None
    assert info.value.reason == "no keys configured; set OPENAI_API_KEYS"
    empty = KeyPool(client, ns, [])
    with pytest.raises(NoKeyAvailable, match="no keys configured; set KIE_API_KEYS"):
        empty.acquire("kie")


# -- pacing ----------------------------------------------------------------------------------


def test_pacing_in_a_tight_loop_never_exceeds_the_limit(client: redis.Redis, ns: str) -> None:
    limit = RateLimit(5, 1)
    pool = KeyPool(client, ns, make_keys("kie", "a", "b"), {("kie", "create"): limit})
    got: Counter[str] = Counter()
    refused = 0
    end = time.monotonic() + 2.2
    while time.monotonic() < end:
        try:
            got[pool.acquire("kie", "create").name] += 1
        except NoKeyAvailable as exc:
            refused += 1
            assert exc.retry_at is not None and exc.retry_at <= time.time() + limit.seconds + 0.05
    assert refused > 0
    for name in ("a", "b"):
        scores = pace_scores(client, ns, "kie", name, "create")
        assert len(scores) == got[name]
        assert_paced(scores, limit)
        assert 8 <= got[name] <= 15  # 5 per second for 2.2 s: at most 15, and used near fully


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=40))
def test_pacing_matches_a_model(client: redis.Redis, steps: list[int]) -> None:
    """Against a model: acquire succeeds exactly when some key has room, retry_at is exact."""
    namespace = f"test-{uuid4().hex}"
    limit = RateLimit(3, 1)
    clock = FakeClock()
    pool = KeyPool(
        client, namespace, make_keys("kie", "a", "b"), {("kie", "q"): limit}, clock=clock
    )
    now_ms = 0
    uses: dict[str, list[int]] = {"a": [], "b": []}
    try:
        for step in steps:
            now_ms += step
            clock.now = T0 + now_ms / 1000
            in_window = {n: [t for t in ts if t > now_ms - 1000] for n, ts in uses.items()}
            free = [n for n in ("a", "b") if len(in_window[n]) < limit.count]
            try:
                name = pool.acquire("kie", "q").name
            except NoKeyAvailable as exc:
                assert not free
                expected = min(in_window[n][-limit.count] + 1000 for n in ("a", "b"))
                assert exc.retry_at == pytest.approx(T0 + expected / 1000, abs=1e-6)
            else:
                assert name in free
                uses[name].append(now_ms)
        for name in ("a", "b"):
            assert_paced(pace_scores(client, namespace, "kie", name, "q"), limit)
    finally:
        cleanup(client, namespace)


# -- many processes --------------------------------------------------------------------------

_CHILD = """
import json, sys, time
import redis
from pydantic import SecretStr
from worker.config import ApiKey, RateLimit
from worker.errors import NoKeyAvailable
from worker.keys import KeyPool

url, ns, names, purpose, count, seconds, duration = json.loads(sys.argv[1])
keys = [ApiKey("kie", n, SecretStr("sk-child-" + n)) for n in names]
client = redis.Redis.from_url(url)
client.ping()
pool = KeyPool(client, ns, keys, {("kie", "create"): RateLimit(count, seconds)})
got = {}
refused = 0
print("ready", flush=True)
start_at = float(sys.stdin.readline())  # the parent's start signal: all children go together
time.sleep(max(0.0, start_at - time.time()))
end = start_at + duration
while time.time() < end:
    try:
        name = pool.acquire("kie", purpose).name
        got[name] = got.get(name, 0) + 1
    except NoKeyAvailable as exc:
        refused += 1
        time.sleep(min(max(exc.retry_at - time.time(), 0.001), 0.02))
print(json.dumps({"got": got, "refused": refused}))
"""


def run_children(
    ns: str, names: list[str], purpose: str, limit: RateLimit, processes: int, duration: float
) -> tuple[list[subprocess.Popen[str]], float]:
    arg = json.dumps([REDIS_URL, ns, names, purpose, limit.count, limit.seconds, duration])
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, arg],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for child in children:  # a barrier: start only once every child has imported and connected
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", line + (child.stderr.read() if child.stderr else "")
    start_at = time.time() + 0.05
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start_at!r}\n")
        child.stdin.flush()
    return children, start_at


def collect(children: list[subprocess.Popen[str]]) -> list[dict[str, int]]:
    results = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        results.append(json.loads(out)["got"])
    return results


def test_many_processes_respect_pacing_and_quarantine(client: redis.Redis, ns: str) -> None:
    limit = RateLimit(5, 1)
    names = ["a", "b", "c", "dead", "late"]
    pool = KeyPool(client, ns, make_keys("kie", *names), {("kie", "create"): limit})
    pool.quarantine("kie", "dead", "AUTH: 401 before the run")
    children, start_at = run_children(ns, names, "create", limit, processes=4, duration=2.0)

    # Quarantine "late" half-way through: from that moment on no process may get it.
    time.sleep(max(0.0, start_at + 1.0 - time.time()))
    pool.quarantine("kie", "late", "BILLING: 402 during the run")
    results = collect(children)

    total: Counter[str] = Counter()
    for got in results:
        total.update(got)
    assert all(got for got in results), results  # every process was served
    assert total["dead"] == 0 and pace_scores(client, ns, "kie", "dead", "create") == []
    for name in names:
        scores = pace_scores(client, ns, "kie", name, "create")
        assert len(scores) == total[name]
        assert_paced(scores, limit)
    late = next(s for s in pool.statuses() if s.name == "late")
    assert late.state is KeyState.QUARANTINED and late.since is not None
    late_scores = pace_scores(client, ns, "kie", "late", "create")
    assert late_scores and max(late_scores) <= round(late.since * 1e6)
    # Saturated keys: each active key served close to its 5/s for the 2 s run.
    for name in ("a", "b", "c"):
        assert 6 <= total[name] <= 15, total


def test_many_processes_share_lru_rotation(client: redis.Redis, ns: str) -> None:
    names = ["a", "b", "c"]
    children, _ = run_children(ns, names, "default", RateLimit(1, 1), processes=3, duration=0.5)
    total: Counter[str] = Counter()
    for got in collect(children):
        total.update(got)
    # One script decides every hand-out, so the global order is round-robin: counts differ by 1.
    assert sum(total.values()) >= 12
    assert max(total.values()) - min(total.values()) <= 1, total


# -- secrets and settings ---------------------------------------------------------------------


def test_secrets_never_reach_redis(client: redis.Redis, ns: str, clock: FakeClock) -> None:
    keys = make_keys("kie", "a", "b")
    secrets = [k.secret.get_secret_value() for k in keys]
    limits = {("kie", "create"): RateLimit(2, 1)}
    pool = KeyPool(client, ns, keys, limits, clock=clock)
    a = pool.acquire("kie", "create")
    b = pool.acquire("kie", "create")
    # Even a message that somehow carries the secret is scrubbed before it is stored.
    pool.report_failure(a, error(ErrorClass.AUTH, f"401 for key {secrets[0]}"))
    pool.report_failure(b, error(ErrorClass.RATE_LIMIT, f"429 {secrets[1]}", retry_after=3))
    pool.quarantine("kie", "b", f"manual {secrets[1]}")
    pool.disable("a", reason=f"operator pasted {secrets[0]}")
    pool.report_success(b)

    found = list(client.scan_iter(match=f"{ns}:*"))
    assert len(found) >= 4
    dump = []
    for key in found:
        dump.append(key)
        kind = client.type(key)
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                dump += [field, value]
        elif kind == b"zset":
            dump += cast(list[bytes], client.zrange(key, 0, -1))
        elif kind == b"string":
            dump.append(client.get(key) or b"")
        else:
            pytest.fail(f"unexpected {kind!r} at {key!r}")
    blob = b"\n".join(dump).decode()
    for secret in secrets:
        assert secret not in blob
    for status in pool.statuses():
        assert not any(s in repr(status) for s in secrets)
    with pytest.raises(NoKeyAvailable) as info:
        pool.acquire("kie")
    assert not any(s in str(info.value) for s in secrets)


def test_statuses_in_config_order_and_decoded_client(ns: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        pool = KeyPool(client, ns, make_keys("kie", "z", "a", "m"))
        pool.acquire("kie")
        pool.extend_cooldown("kie", "a", time.time() + 60)
        statuses = pool.statuses()
        assert [s.name for s in statuses] == ["z", "a", "m"]
        assert [s.state for s in statuses] == [KeyState.ACTIVE, KeyState.COOLING, KeyState.ACTIVE]
        assert statuses[0].uses == 1 and statuses[0].last_used is not None
        assert statuses[2].last_used is None and statuses[2].errors == 0
        assert pool.acquire("kie").name == "m"
    finally:
        cleanup(client, ns)
        client.close()


def test_from_settings(client: redis.Redis) -> None:
    namespace = f"test-{uuid4().hex}"
    config = Settings(  # type: ignore[call-arg]
        _env_file=None,
        redis_namespace=namespace,
        kie_api_keys=SecretStr("k1=kie-secret-one,k2=kie-secret-two"),
        openai_api_keys=SecretStr("o1=sk-openai-secret-one"),
        kie_create_limit="2/10",
    )
    pool = KeyPool.from_settings(config, client)
    try:
        assert pool.providers() == ["kie", "openai"]
        names = [pool.acquire("kie", "create").name for _ in range(4)]
        assert names == ["k1", "k2", "k1", "k2"]
        with pytest.raises(NoKeyAvailable, match=r"create pace limit \(2/10s\)"):
            pool.acquire("kie", "create")
        assert pool.acquire("openai").name == "o1"
    finally:
        cleanup(client, namespace)


def test_successes_are_stamped_at_most_once_a_second_but_always_after_a_failure(
    client: redis.Redis, ns: str, clock: FakeClock
) -> None:
    pool = KeyPool(client, ns, make_keys("kie", "a"), clock=clock)
    key = pool.acquire("kie")
    state = f"{ns}:keys:kie:a"

    def stamped() -> float:
        return float(client.hget(state, "last_success") or 0)

    pool.report_success(key)
    first = stamped()
    assert first == pytest.approx(clock.now)
    clock.advance(5)
    pool.report_success(key)  # within a second of real time: not written again
    assert stamped() == first
    pool.report_failure(key, error(ErrorClass.TEMPORARY))
    pool.report_success(key)  # the first success after a failure is always written
    assert stamped() == pytest.approx(clock.now)


def test_a_success_stamp_never_raises_and_is_tried_again_when_redis_is_down(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    # The stamp comes between a paid createTask and the write of its task id: it must not fail
    # the step. Nothing listens on port 1.
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    keys = make_keys("kie", "a")
    pool = KeyPool(down, f"test:{uuid4().hex}", keys, clock=clock)
    with caplog.at_level("WARNING", logger="worker.keys"):
        pool.report_success(keys[0])
        pool.report_success(keys[0])  # not "stamped within the second": it tries again
    warnings = [r for r in caplog.records if "could not stamp key kie/a" in r.getMessage()]
    assert len(warnings) == 2
