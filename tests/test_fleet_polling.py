"""Idle polling scaled to the fleet: the formula, membership on real Redis, and a real Dramatiq
worker's consumers taking the new interval."""

from __future__ import annotations

import time

import dramatiq
import pytest
import redis

from tests.conftest import REDIS_URL
from worker import dramatiq_internals as internals
from worker.fleet_polling import MEMBER_TTL_SECONDS, FleetPolling, idle_poll_ms


@pytest.mark.unit
@pytest.mark.parametrize(
    ("base", "processes", "expected"),
    [(50, 1, 50), (50, 2, 50), (50, 4, 100), (50, 20, 500), (50, 100, 1000), (2000, 40, 2000)],
)
def test_the_fleet_polls_like_two_processes(base: int, processes: int, expected: int) -> None:
    assert idle_poll_ms(base, processes) == expected


def test_members_count_each_other_and_the_gone_drop_out(redis_namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    now = [1000.0]
    applied: dict[str, list[int]] = {}

    def member(name: str) -> FleetPolling:
        return FleetPolling(
            client,
            redis_namespace,
            name,
            50,
            lambda ms: applied.setdefault(name, []).append(ms),
            clock=lambda: now[0],
        )

    fleet = [member(f"host:{n}") for n in range(6)]
    for m in fleet:
        m.beat()
    assert fleet[-1].beat() == 150 and fleet[-1].processes == 6  # 50 ms × 6 / 2
    fleet[0].leave()  # a clean stop leaves at once
    assert fleet[1].beat() == 125
    now[0] += MEMBER_TTL_SECONDS + 1  # four more were killed: only 1 and 2 renew
    fleet[1].beat()
    assert fleet[2].beat() == 50 and fleet[2].processes == 2
    assert applied["host:2"][-1] == 50
    client.close()


def test_redis_out_of_reach_keeps_the_interval() -> None:
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    calls: list[int] = []
    m = FleetPolling(down, "nowhere", "host:1", 50, calls.append)
    assert m.beat() == 50 and calls == []


def test_a_running_workers_consumers_take_the_interval(redis_namespace: str) -> None:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=REDIS_URL, namespace=redis_namespace)

    @dramatiq.actor(broker=broker, queue_name="fleet-test")
    def noop() -> None:
        return None

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        threads = internals.consumer_threads(worker)
        while not all(t.consumer is not None for t in threads):
            assert time.monotonic() < deadline, "consumers did not start"
            time.sleep(0.05)
        internals.set_idle_poll(worker, 500)
        assert {t.consumer.timeout for t in threads} == {500}
        assert {t.worker_timeout for t in threads} == {500}
    finally:
        worker.stop()
        broker.close()
