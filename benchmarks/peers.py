"""The issue's reference points, measured on this machine: Procrastinate and Dramatiq on no-op jobs.

    python -m benchmarks.peers [--seconds 5] [--backlog 5000] [--messages 20000]

The performance targets are set against peers "on the same machine": Procrastinate's single
defers per second, Procrastinate draining no-op jobs (one worker, concurrency 16), and Dramatiq
draining no-op messages (2 processes x 8 threads). This machine's speed changes by the hour, so
run this in the same minutes as ``benchmarks.run`` to compare.

Procrastinate is not a dependency of the project. Install it beside it first:
``.venv/bin/pip install procrastinate``. Without it, only Dramatiq is measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from benchmarks.common import ADMIN_URL, REDIS_URL, Progress, drop_namespace, print_json, quiet


def procrastinate_figures(
    seconds: float, backlog: int, progress: Progress = quiet
) -> dict[str, Any]:
    """Single defers per second from one thread, then ``backlog`` no-op jobs drained by one worker
    with concurrency 16, on a scratch database."""
    try:
        import procrastinate  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return {"skipped": "procrastinate is not installed (pip install procrastinate)"}
    # its warning that the app lives in a __main__ module (true here, and harmless)
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    name = f"wbench_peer_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
        noop = app.task(queue="bench", name="noop")(_noop)
        with app.open():
            app.schema_manager.apply_schema()
            for _ in range(100):  # warm up
                noop.defer()
            progress(f"Procrastinate: single defers for {seconds:g} s")
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                noop.defer()
                n += 1
            defers = n / (time.perf_counter() - start)
            queued = n + 100
            if backlog > queued:
                noop.batch_defer(*([{}] * (backlog - queued)))
                queued = backlog
            progress(f"Procrastinate: one worker draining {queued:,} no-op jobs")
            start = time.perf_counter()
            app.run_worker(
                queues=["bench"],
                concurrency=16,
                wait=False,  # stop when the queue is empty
                install_signal_handlers=False,
                listen_notify=False,
            )
            drain = time.perf_counter() - start
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            ).fetchone()
        done = int(row[0]) if row else 0
        return {
            "version": _version("procrastinate"),
            "single_defers_per_s": round(defers, 1),
            "drained_jobs": done,
            "drain_jobs_per_s": round(done / drain, 1),
        }
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _noop() -> None:
    """Procrastinate's no-op task."""


#: The Dramatiq reference point's worker: 2 processes x 8 threads.
PROCESSES_THREADS = ("--processes", "2", "--threads", "8")


def dramatiq_figures(messages: int, progress: Progress = quiet) -> dict[str, Any]:
    """No-op messages sent from one thread, then drained by the dramatiq CLI with 2 processes x 8
    threads: from the first ack to the last."""
    namespace = f"bench-peers-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PEER_NAMESPACE": namespace, "REDIS_URL": REDIS_URL}
    os.environ["PEER_NAMESPACE"] = namespace
    from benchmarks import noop_actor  # the broker reads the namespace when imported

    r = redis.Redis.from_url(REDIS_URL)
    pending = f"{namespace}:bench.msgs"  # the messages not yet acknowledged
    worker: subprocess.Popen[bytes] | None = None
    try:
        progress(f"Dramatiq: sending {messages:,} no-op messages")
        start = time.perf_counter()
        for _ in range(messages):
            noop_actor.noop.send()
        sent = messages / (time.perf_counter() - start)
        progress("Dramatiq: 2 processes x 8 threads draining them")
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "benchmarks.noop_actor:broker", *PROCESSES_THREADS],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while r.hlen(pending) == messages and time.monotonic() < deadline:
            time.sleep(0.005)
        first, left = time.perf_counter(), int(r.hlen(pending))
        while r.hlen(pending) > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.perf_counter() - first
        remaining = int(r.hlen(pending))
        return {
            "version": _version("dramatiq"),
            "sent_per_s": round(sent, 1),
            "drained_messages": messages - remaining,
            "drained_per_s": round((left - remaining) / elapsed, 1),
        }
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        noop_actor.broker.close()
        r.close()
        drop_namespace(namespace)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def run(
    seconds: float = 5.0, backlog: int = 5000, messages: int = 20_000, progress: Progress = quiet
) -> dict[str, Any]:
    return {
        "procrastinate": procrastinate_figures(seconds, backlog, progress),
        "dramatiq": dramatiq_figures(messages, progress),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="of single defers")
    p.add_argument("--backlog", type=int, default=5000, help="no-op jobs for Procrastinate")
    p.add_argument("--messages", type=int, default=20_000, help="no-op messages for Dramatiq")
    args = p.parse_args()
    print_json(lambda progress: run(args.seconds, args.backlog, args.messages, progress=progress))


if __name__ == "__main__":
    main()
