"""Helpers shared by the benchmarks: a throwaway database and Redis namespace, the simulator in
its own process, and `worker run` processes, all on this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from simulator.testing import RunningSimulator
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database
from worker.migrate import migrate

ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or os.environ.get(
    "REDIS_URL", "redis://127.0.0.1:6379/0"
)
BOT_TOKEN = "999:bench-telegram-token"
PRODUCT = {"title": "Benchmark mug", "image_url": "https://example.test/mug.jpg"}


@contextmanager
def scratch_settings(prefix: str, **overrides: object) -> Iterator[Settings]:
    """Settings on a new database and Redis namespace, both removed afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    namespace = f"bench-{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url, create_database=False)
        yield load_settings(
            database_url=url,
            redis_namespace=namespace,
            redis_url=REDIS_URL,
            _env_file=None,
            **overrides,
        )
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        drop_namespace(namespace)


def drop_namespace(namespace: str) -> None:
    """Delete every Redis key under ``namespace:``."""
    with redis.Redis.from_url(REDIS_URL) as r:
        keys = list(r.scan_iter(f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])


#: Receives a short line about where a running benchmark is (for a live status line).
Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """A :data:`Progress` that shows nothing."""


def to_stderr(line: str) -> None:
    """A :data:`Progress` for a terminal: the line, overwritten in place, on standard error
    (nothing when standard error is not a terminal)."""
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def print_json(run: Callable[[Progress], dict[str, Any]]) -> None:
    """Run a benchmark with its progress on a terminal's standard error, then print its result
    as one JSON object on standard output."""
    result = run(to_stderr)
    to_stderr("")  # clear the progress line
    print(json.dumps(result))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has spent so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def processes_named(names: Iterable[str]) -> dict[int, str]:
    """Every running process whose command name (``/proc/<pid>/comm``) is one of ``names``."""
    wanted = set(names)
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as f:
                    comm = f.read().strip()
            except OSError:  # the process ended meanwhile
                continue
            if comm in wanted:
                found[int(entry.name)] = comm
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


@dataclass
class Stack:
    """PostgreSQL + Redis (scratch), the simulator process, and worker processes."""

    settings: Settings
    env: dict[str, str]
    sim: RunningSimulator
    db: Database
    client: Client
    logs: Path
    sim_pid: int = 0
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: `worker webhooks`, when the stack runs with callbacks.
    webhooks: subprocess.Popen[bytes] | None = None

    def start_webhooks(self, safety_poll_seconds: float = 120.0) -> None:
        """Start `worker webhooks` on a free port and give the workers started afterwards its
        URL (``KIE_CALLBACK_URL``): the simulator then calls back when a task ends."""
        port = free_port()
        log = (self.logs / "webhooks.log").open("wb")
        self.webhooks = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.main", "webhooks", "--port", str(port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        if not wait_until(lambda: _answers(f"{url}/healthz"), 30, interval=0.1):
            raise RuntimeError(f"worker webhooks did not start (see {self.logs}/webhooks.log)")
        self.env["KIE_CALLBACK_URL"] = f"{url}/callbacks/video/kie"
        self.env["KIE_SAFETY_POLL_SECONDS"] = str(safety_poll_seconds)

    def start_workers(
        self, n: int, threads: int = 8, module: str = "worker.cli.main", **env: str
    ) -> None:
        """Start ``n`` ``worker run`` processes (``module`` is the entry point: another one can
        wrap the worker, as ``benchmarks.instrumented_worker`` does)."""
        for i in range(n):
            log = (self.logs / f"worker-{i}.log").open("wb")
            self.workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        module,
                        "run",
                        "--threads",
                        str(threads),
                        "--instance",
                        str(i + 1),
                    ],
                    env={**self.env, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def stop_workers(self) -> None:
        everything = [*self.workers, *([self.webhooks] if self.webhooks else [])]
        for w in everything:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in everything:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
        self.workers.clear()
        self.webhooks = None

    def count(self, where: str, params: Any = None) -> int:
        row = self.db.fetchone(f"SELECT count(*) AS n FROM jobs WHERE {where}", params)
        return int(row["n"]) if row else 0


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def fast_simulator(render_seconds: float) -> dict[str, Any]:
    """Simulator settings for measuring the worker: no rate limits, small result files."""
    return {
        "kie": {
            "render_seconds": render_seconds,
            "create_limit": 0,
            "query_limit": 0,
            "result_size_bytes": 4096,
        }
    }


@contextmanager
def stack(prefix: str, sim_config: dict[str, Any], **overrides: Any) -> Iterator[Stack]:
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    logs = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    values: dict[str, Any] = {
        "kie_api_keys": "bench-a=bench-kie-a,bench-b=bench-kie-b",
        "openai_api_keys": "bench-o=bench-openai",
        "telegram_bot_token": BOT_TOKEN,
        "kie_base_url": sim_url,
        "openai_base_url": f"{sim_url}/v1",
        "telegram_api_url": sim_url,
        "result_hosts": "127.0.0.1",  # the simulator's videos: http on loopback
        "result_allow_http": True,
        "storage_dir": str(logs / "storage"),
        "kie_create_limit": "100000/1",
        "kie_query_limit": "100000/1",
        "progress_after_seconds": 3600,
        **overrides,
    }
    config = {"telegram": {"bot_token": BOT_TOKEN}, **sim_config}
    config_file = logs / "sim.json"
    config_file.write_text(json.dumps(config))
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--config", str(config_file)],
        stdout=(logs / "sim.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        sim = RunningSimulator.connect(sim_url, wait_seconds=15)
        with scratch_settings(prefix, **values) as settings:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("KIE_", "OPENAI_", "TELEGRAM_", "METRICS_PORT"))
            }
            env.update({k.upper(): str(v) for k, v in values.items()})
            env.update(
                {
                    "DATABASE_URL": settings.database_url,
                    "REDIS_URL": settings.redis_url,
                    "REDIS_NAMESPACE": settings.redis_namespace,
                }
            )
            db = Database(settings.database_url, min_size=1, max_size=4).open()
            client = Client(settings, db=db)
            s = Stack(settings, env, sim, db, client, logs, sim_proc.pid)
            try:
                yield s
            finally:
                s.stop_workers()
                client.close()
                db.close()
    finally:
        sim_proc.terminate()
        sim_proc.wait(10)


def submit_backlog(client: Client, jobs: int, *, user_id: int = 1, count: int = 5) -> list[int]:
    """Submit ``jobs`` video jobs (in requests of ``count``), with credits granted for them."""
    client.grant(user_id, jobs)
    ids: list[int] = []
    while len(ids) < jobs:
        n = count if jobs - len(ids) >= count else 1
        ids += client.submit_video(user_id=user_id, product=PRODUCT, count=n).job_ids
    return ids


def wait_until(predicate: Any, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
