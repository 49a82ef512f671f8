"""The wake-up dispatcher and its batched enqueue, on the real Redis and a real Dramatiq worker."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.broker import enqueue_many, make_broker
from worker.config import Settings
from worker.dispatch import Dispatcher


def _stored(r: redis.Redis, namespace: str) -> dict[str, Any]:
    """What a broker namespace holds: each queue's messages (ids and times stripped), in order."""
    out: dict[str, Any] = {}
    for key in sorted(r.scan_iter(f"{namespace}:*")):
        if not key.endswith(".msgs"):
            continue
        queue = key[len(namespace) + 1 : -len(".msgs")]
        order = list(r.lrange(f"{namespace}:{queue}", 0, -1))
        bodies = {k: json.loads(v) for k, v in r.hgetall(key).items()}
        assert sorted(order) == sorted(bodies), "every listed id has its message and no more"
        messages = []
        for message_id in order:
            body = bodies[message_id]
            options = dict(body["options"])
            assert options.pop("redis_message_id") == message_id
            eta = options.pop("eta", None)
            body.pop("message_id")
            body.pop("message_timestamp")
            messages.append({**body, "options": options, "delayed": eta is not None})
        out[queue] = messages
    return out


@pytest.mark.parametrize("scripts_lost", [False, True], ids=["scripts-loaded", "scripts-lost"])
def test_enqueue_many_stores_what_enqueue_stores(settings: Settings, scripts_lost: bool) -> None:
    """The batch path mirrors Dramatiq's own enqueue, delays included; this fails if a Dramatiq
    upgrade changes what its dispatch script expects. With the scripts lost (as after a Redis
    restart), the batch loads the script and is sent once, not twice."""
    one_by_one = make_broker(
        settings.model_copy(update={"redis_namespace": settings.redis_namespace + "-a"})
    )
    batched = make_broker(
        settings.model_copy(update={"redis_namespace": settings.redis_namespace + "-b"})
    )
    sends: list[tuple[str, str, tuple[object, ...], int | None]] = [
        ("video", "video.prompt", (1,), None),
        ("video", "video.poll", (2,), 60_000),
        ("notify", "notify", (3, "failure"), None),
        ("video", "video.prompt", (4,), None),
    ]

    def message(queue: str, actor: str, args: tuple[object, ...]) -> dramatiq.Message[None]:
        return dramatiq.Message(
            queue_name=queue, actor_name=actor, args=args, kwargs={}, options={}
        )

    before = time.time() * 1000
    for queue, actor, args, delay in sends:
        one_by_one.enqueue(message(queue, actor, args), delay=delay)
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    if scripts_lost:
        r.script_flush()
        assert r.script_exists(batched.scripts["dispatch"].sha) == [False]
    enqueue_many(batched, [(message(q, a, args), d) for q, a, args, d in sends])

    try:
        a = _stored(r, one_by_one.namespace)
        b = _stored(r, batched.namespace)
        assert set(a) == {"video", "notify", "video.DQ"}
        assert a == b
        for raw in r.hvals(f"{batched.namespace}:video.DQ.msgs"):
            assert json.loads(raw)["options"]["eta"] >= before + 60_000
    finally:
        for ns in (one_by_one.namespace, batched.namespace):
            keys = list(r.scan_iter(f"{ns}:*"))
            if keys:
                r.delete(*keys)
        r.close()
        one_by_one.close()
        batched.close()


def test_background_dispatcher_batches_and_every_hint_is_consumed_once(
    settings: Settings,
) -> None:
    broker = make_broker(settings)
    seen: list[int] = []
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name="hints", actor_name="hint")
    def hint(n: int) -> None:
        with lock:
            seen.append(n)

    batches: list[int] = []
    dispatcher = Dispatcher(broker, background=True)
    original = dispatcher._send_batch

    def counting(items: list[Any]) -> bool:
        batches.append(len(items))
        return original(items)

    dispatcher._send_batch = counting  # type: ignore[method-assign]
    for n in range(300):
        assert dispatcher.send("hints", n, actor="hint")
    assert dispatcher.flush(timeout=10)
    assert sum(batches) == 300
    assert max(batches) > 1, "hints sent in a burst go to Redis together"

    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # a duplicate would arrive now
    finally:
        worker.stop()
        dispatcher.close()
        broker.close()
    assert sorted(seen) == list(range(300))


def test_unreachable_redis_fails_the_batch_quietly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    assert isinstance(broker, RedisBroker)
    dispatcher = Dispatcher(broker, background=True, backoff_seconds=0.0)
    with caplog.at_level("WARNING", logger="worker.dispatch"):
        for n in range(5):
            assert dispatcher.send("hints", n, actor="hint")
        assert dispatcher.flush(timeout=15)
    dispatcher.close()
    assert any("broker unreachable" in r.getMessage() for r in caplog.records)
    assert dispatcher._thread is not None and not dispatcher._thread.is_alive()
