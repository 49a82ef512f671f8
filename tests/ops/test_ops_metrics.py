"""The scrape-time collector on real PostgreSQL, Redis and Dramatiq: jobs by status, credits,
queue depths counted the way the Redis broker lays messages out, caching, and a dead source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PRODUCT
from worker.broker import make_broker, redis_client
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.metrics_collector import WorkerCollector, install

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        storage_dir=str(settings.storage_dir),
        kie_api_keys="k1=ops-kie-secret-1",
        openai_api_keys="o1=ops-openai-secret-1",
        _env_file=None,
    )


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    yield CollectorRegistry()


def test_gauges_from_postgres_and_the_broker(
    keyed: Settings, db: Database, client: Client, registry: CollectorRegistry
) -> None:
    redis = redis_client(keyed)
    clock = Clock()
    install(keyed, db, redis, registry, clock=clock)

    client.grant(5, 10)
    ids = client.submit_video(user_id=5, chat_id=5, product=PRODUCT, count=3).job_ids
    client.cancel(ids[0])

    # The broker as workers see it: one wake-up fetched and not acked, one delayed, one dead.
    broker = make_broker(keyed)
    try:
        Dispatcher(broker).send("video", ids[1], actor="video.poll", delay_ms=60_000)
        broker.declare_queue("notify")
        Dispatcher(broker).send("notify", ids[1], "failure")
        Dispatcher(broker).send("notify", ids[2], "failure")
        consumer = broker.consume("notify", prefetch=2, timeout=1000)
        first = next(consumer)
        second = next(consumer)
        assert first is not None and second is not None
        consumer.nack(second)  # dead-lettered
        # `first` stays fetched and unacknowledged

        s = scrape(registry)
        assert value(s, "worker_collector_up", source="postgres") == 1
        assert value(s, "worker_collector_up", source="redis") == 1
        assert value(s, "worker_jobs", status="queued") == 2
        assert value(s, "worker_jobs", status="cancelled") == 1
        assert value(s, "worker_jobs", status="running") == 0
        assert value(s, "worker_credits", state="held") == 2
        assert value(s, "worker_credits", state="captured") == 0
        assert value(s, "worker_credits", state="refunded") == 1
        assert value(s, "worker_jobs_stuck", reason="queued_overdue") == 0
        # submit sent three prompt wake-ups (the cancelled job's included)
        assert value(s, "worker_queue_messages", queue="video", state="ready") == 3
        assert value(s, "worker_queue_messages", queue="video", state="delayed") == 1
        assert value(s, "worker_queue_messages", queue="notify", state="unacked") == 1
        assert value(s, "worker_queue_messages", queue="notify", state="ready") == 0
        assert value(s, "worker_queue_dead_letters", queue="notify") == 1
        assert value(s, "worker_queue_dead_letters", queue="video") == 0
        assert value(s, "worker_key_state", provider="kie", key="k1", state="active") == 1
        assert value(s, "worker_key_state", provider="kie", key="k1", state="quarantined") == 0
        assert value(s, "worker_key_state", provider="openai", key="o1", state="active") == 1
        consumer.close()
    finally:
        broker.close()

    # Cached for the TTL: a new job shows up only once 5 s have passed.
    client.submit_video(user_id=5, chat_id=5, product=PRODUCT, count=1)
    assert value(scrape(registry), "worker_jobs", status="queued") == 2
    clock.now += 5.1
    assert value(scrape(registry), "worker_jobs", status="queued") == 3

    # A quarantined key shows in its state gauge.
    from worker.keys import KeyPool

    KeyPool.from_settings(keyed, redis).quarantine("kie", "k1", "AUTH: 401")
    clock.now += 5.1
    s = scrape(registry)
    assert value(s, "worker_key_state", provider="kie", key="k1", state="quarantined") == 1
    assert value(s, "worker_key_state", provider="kie", key="k1", state="active") == 0
    text = generate_latest(registry).decode()
    assert "ops-kie-secret-1" not in text and "ops-openai-secret-1" not in text
    redis.close()


def test_a_dead_source_does_not_break_the_scrape(
    keyed: Settings, db: Database, registry: CollectorRegistry
) -> None:
    dead = load_settings(
        **{**keyed.model_dump(include={"database_url", "redis_namespace"})},
        redis_url="redis://127.0.0.1:1/0",
        _env_file=None,
    )
    redis = redis_client(dead)
    registry.register(WorkerCollector(dead, db, redis))
    s = scrape(registry)
    assert value(s, "worker_collector_up", source="redis") == 0
    assert value(s, "worker_collector_up", source="postgres") == 1
    assert value(s, "worker_jobs", status="queued") == 0
    assert not any(name == "worker_queue_messages" for name, _ in s)
    redis.close()
