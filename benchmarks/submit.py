"""Submits per second from one thread, each with its credit hold and its wake-up message.

    python -m benchmarks.submit [--seconds 10] [--json]

Runs on a throwaway database on the local PostgreSQL and a throwaway Redis namespace.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import Progress, quiet, scratch_settings, to_stderr
from worker.client import Client

PRODUCT = {"title": "Benchmark mug", "image_url": "https://example.test/mug.jpg"}


def measure(client: Client, *, count: int, seconds: float, user_id: int) -> dict[str, float]:
    # Warm up: pool connections, prepared statements, the broker connection.
    for _ in range(50):
        client.submit_video(user_id=user_id, product=PRODUCT, count=count)
    n = 0
    latencies: list[float] = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        client.submit_video(user_id=user_id, product=PRODUCT, count=count)
        latencies.append(time.perf_counter() - now)
        n += 1
    client.dispatcher.flush(timeout=60)  # every wake-up handed to Redis counts in the time
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "submits_per_s": round(n / elapsed, 1),
        "jobs_per_s": round(n * count / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


def run(seconds: float = 10.0, progress: Progress = quiet) -> dict[str, dict[str, float]]:
    with scratch_settings("wbench_submit") as settings, Client(settings) as client:
        client.grant(1, 10**9)
        client.grant(2, 10**9)
        progress(f"single-video submits for {seconds:g} s")
        single = measure(client, count=1, seconds=seconds, user_id=1)
        progress(f"submits of 5 videos for {seconds:g} s")
        five = measure(client, count=5, seconds=seconds, user_id=2)
    return {"count_1": single, "count_5": five}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.seconds, progress=to_stderr)
    to_stderr("")  # clear the progress line
    if args.json:
        print(json.dumps(result))
    else:
        for name, figures in result.items():
            print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
