"""worker.models: pauses shared by every worker in Redis, extend-only, one alert per pause;
an operator's disable holds until enabled."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL
from worker.models import ResourceState, ResourceSwitches


@pytest.fixture
def switches(redis_namespace: str) -> Iterator[tuple[ResourceSwitches, ResourceSwitches]]:
    a, b = redis.Redis.from_url(REDIS_URL), redis.Redis.from_url(REDIS_URL)
    # Two "workers": two clients, one namespace.
    yield ResourceSwitches(a, redis_namespace, "m"), ResourceSwitches(b, redis_namespace, "m")
    a.close()
    b.close()


def test_a_pause_is_seen_by_every_worker_and_ends_by_itself(
    switches: tuple[ResourceSwitches, ResourceSwitches],
) -> None:
    one, two = switches
    assert one.blocked(["x", "y"]) == {}
    assert one.pause("x", "createTask: code 500: This interface is temporarily paused", 0.5)
    # The second worker seeing the same answer extends it but does not alert again.
    assert not two.pause("x", "createTask: code 500: again", 0.4)
    seen = two.blocked(["x", "y"])
    assert list(seen) == ["x"] and seen["x"].state is ResourceState.PAUSED
    assert seen["x"].reason == "createTask: code 500: again" and seen["x"].pauses == 1
    assert seen["x"].until is not None and seen["x"].until - time.time() > 0.3
    time.sleep(0.6)
    status = one.status("x")
    assert status.state is ResourceState.LIVE and status.last_error == "createTask: code 500: again"
    assert one.pause("x", "paused again", 10)  # a new pause: a new alert
    assert one.status("x").pauses == 2


def test_a_pause_only_extends(switches: tuple[ResourceSwitches, ResourceSwitches]) -> None:
    one, _ = switches
    one.pause("x", "long", 60)
    one.pause("x", "short", 1)
    until = one.status("x").until
    assert until is not None and until - time.time() > 50


def test_disable_holds_until_enable(switches: tuple[ResourceSwitches, ResourceSwitches]) -> None:
    one, two = switches
    one.disable("x", "operator: too slow today")
    status = two.status("x")
    assert (status.state, status.reason, status.until) == (
        ResourceState.DISABLED,
        "operator: too slow today",
        None,
    )
    one.pause("x", "paused", 60)
    assert two.status("x").state is ResourceState.DISABLED
    assert two.enable("x").state is ResourceState.LIVE  # clears the pause too


def test_secrets_never_reach_redis(switches: tuple[ResourceSwitches, ResourceSwitches]) -> None:
    one, _ = switches
    one.note_error("x", "failed with Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz123456")
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in (one.status("x").last_error or "")
