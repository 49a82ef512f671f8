"""The floor: what a video's operations cost on this machine with none of our code around them.

    python -m benchmarks.floor [--n 2000]

Each video needs at least: 4 HTTP exchanges through httpx (createTask, recordInfo, the download
and Telegram's sendVideo), 1 chat completion through the OpenAI SDK, 7 durable commits, 3 Redis
scripts (the key pool), 1 Dramatiq message and 1 delayed one (the poll). This benchmark runs each
operation alone, in a loop, against the same services the pipeline uses (the simulator in its own
process, PostgreSQL, Redis). It measures the CPU of the client and of the server process, then adds
the costs by those counts: ``floor_ms_per_video``. ``ceiling_jobs_per_s`` is the most this
machine's cores could do at that cost.

It is a lower bound. Each operation is the cheapest of its kind: a health check instead of
createTask, a one-row insert instead of a fenced move, a no-op actor. A single thread runs the
loop, so no thread contends for the GIL. Each operation's ``wall_us`` is its latency in that loop
(for the messages, 8 threads drain them: the wall time per message is a throughput); the commit's
is the floor under one thread's submits, which are one durable commit each.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import openai
import psycopg
import redis
from dramatiq.brokers.redis import RedisBroker

from benchmarks.common import (
    REDIS_URL,
    Progress,
    drop_namespace,
    fast_simulator,
    print_json,
    process_cpu_seconds,
    processes_named,
    quiet,
    stack,
)
from jobs.video.settings import video_settings
from worker.http import client as http_client

#: What one video costs, by operation (see the module's docstring).
PER_VIDEO = {
    "http": 4,
    "openai": 1,
    "commit": 7,
    "redis_script": 3,
    "message": 1,
    "delayed_message": 1,
}


@contextmanager
def _cpu(result: dict[str, float], n: int, server_pid: int | None) -> Iterator[None]:
    """Microseconds per operation over ``n`` operations: CPU of this process and of the server,
    and the wall time (for a loop in one thread, the latency of one operation)."""
    server0 = process_cpu_seconds(server_pid) if server_pid else 0.0
    client0 = time.process_time()
    wall0 = time.perf_counter()
    yield
    wall = time.perf_counter() - wall0
    client = time.process_time() - client0
    server = (process_cpu_seconds(server_pid) - server0) if server_pid else 0.0
    result["client_us"] = round(client / n * 1e6, 1)
    result["server_us"] = round(server / n * 1e6, 1)
    result["total_us"] = round((client + server) / n * 1e6, 1)
    result["wall_us"] = round(wall / n * 1e6, 1)


def _loop(n: int, server_pid: int | None, op: Callable[[], object]) -> dict[str, float]:
    for _ in range(min(n, 100)):  # warm up: connections, caches, plans
        op()
    result: dict[str, float] = {}
    with _cpu(result, n, server_pid):
        for _ in range(n):
            op()
    return result


def _redis_pid() -> int | None:
    return next(iter(processes_named(["redis-server"])), None)


def _messages(n: int, delay: int | None, redis_pid: int | None) -> dict[str, float]:
    """A no-op actor on Dramatiq's Redis broker: ``n`` messages enqueued, then drained by a
    worker with 8 threads in this process. CPU of this process and of Redis per message."""
    namespace = f"bench-floor-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)  # type: ignore[no-untyped-call]
    done = threading.Semaphore(0)

    def noop() -> None:
        done.release()

    actor = dramatiq.actor(broker=broker, queue_name="floor", actor_name="noop")(noop)
    result: dict[str, float] = {}
    worker = dramatiq.Worker(broker, worker_threads=8, worker_timeout=50)
    try:
        with _cpu(result, n, redis_pid):
            for _ in range(n):
                actor.send_with_options(delay=delay)
            worker.start()
            for _ in range(n):
                if not done.acquire(timeout=120):
                    raise RuntimeError("the no-op messages were not all processed")
    finally:
        worker.stop()
        broker.close()
        drop_namespace(namespace)
    return result


def run(n: int = 2000, progress: Progress = quiet) -> dict[str, Any]:
    redis_pid = _redis_pid()
    ops: dict[str, dict[str, float]] = {}
    with stack("wbench_floor", fast_simulator(0)) as s:
        with http_client(10.0) as http:  # the client every provider adapter uses
            progress("HTTP exchanges through httpx")
            health = f"{s.sim.url}/_sim/health"
            ops["http"] = _loop(n, s.sim_pid, lambda: http.get(health).content)
        chat = openai.OpenAI(api_key="floor", base_url=f"{s.sim.url}/v1", max_retries=0)
        body = {
            "model": video_settings(s.settings).openai_model,
            "messages": [{"role": "user", "content": "Product title: Benchmark mug"}],
        }
        progress("chat completions through the OpenAI SDK")
        ops["openai"] = _loop(
            n // 4, s.sim_pid, lambda: chat.post("/chat/completions", cast_to=object, body=body)
        )
        chat.close()
        with psycopg.connect(s.settings.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE floor (id bigserial PRIMARY KEY, v int NOT NULL)")
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            progress("durable commits")
            ops["commit"] = _loop(
                n, int(row[0]), lambda: conn.execute("INSERT INTO floor (v) VALUES (%s)", (1,))
            )
        r = redis.Redis.from_url(REDIS_URL)
        key = f"{s.settings.redis_namespace}:floor"
        script = r.register_script("return redis.call('incr', KEYS[1])")
        progress("Redis scripts")
        ops["redis_script"] = _loop(n, redis_pid, lambda: script(keys=[key]))
        r.close()
    progress("Dramatiq messages")
    ops["message"] = _messages(n, None, redis_pid)
    progress("delayed Dramatiq messages")
    ops["delayed_message"] = _messages(n // 2, 1, redis_pid)
    floor_us = sum(PER_VIDEO[op] * ops[op]["total_us"] for op in PER_VIDEO)
    cores = os.cpu_count() or 1
    return {
        "operations_us": ops,
        "per_video": PER_VIDEO,
        "floor_ms_per_video": round(floor_us / 1000, 2),
        "cores": cores,
        "ceiling_jobs_per_s": round(cores * 1e6 / floor_us, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="operations of each kind")
    args = p.parse_args()
    print_json(lambda progress: run(args.n, progress=progress))


if __name__ == "__main__":
    main()
