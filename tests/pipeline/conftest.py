"""The whole pipeline on real services: PostgreSQL, Redis, Dramatiq workers and the simulator.

Workers run either in this process (a real ``dramatiq.Worker`` with its threads, fast to start)
or as separate ``worker run`` processes, as systemd would start them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.config import SimConfig
from simulator.testing import RunningSimulator, start_in_thread
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database
from worker.runner import WorkerProcess

KIE_KEYS = "k1=sim-kie-1,k2=sim-kie-2"
OPENAI_KEYS = "o1=sim-openai-1"
BOT_TOKEN = "123456:sim-telegram-token-abcdef"
TERMINAL = ("succeeded", "failed", "cancelled")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout} s")
        time.sleep(0.05)
    return result


@pytest.fixture(scope="session")
def sim() -> Iterator[RunningSimulator]:
    running = start_in_thread(SimConfig())
    yield running
    running.stop()


def _sim_defaults() -> dict[str, Any]:
    return {
        "kie": {"render_seconds": 1.0, "create_limit": 0, "query_limit": 0, "timeout_seconds": 3.0},
        "openai": {"timeout_seconds": 3.0},
        "telegram": {"bot_token": BOT_TOKEN, "timeout_seconds": 3.0},
    }


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        sim: RunningSimulator,
        db: Database,
        env: dict[str, str],
        overrides: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.overrides = overrides
        self.sim = sim
        self.db = db
        self.env = env
        self.client = Client(settings, db=db)
        self.workers: list[WorkerProcess] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def reconfigure(self, **overrides: Any) -> None:
        """Change settings for the client and every worker started afterwards."""
        self.overrides = {**self.overrides, **overrides}
        self.settings = load_settings(**self.overrides)
        self.client = Client(self.settings, db=self.db)
        self.env.update({k.upper(): str(v) for k, v in overrides.items()})

    # -- workers -----------------------------------------------------------------------------

    def start_worker(self, threads: int = 4) -> WorkerProcess:
        w = WorkerProcess(self.settings, threads=threads, instance=len(self.workers))
        w.start()
        self.workers.append(w)
        return w

    def start_process(
        self, threads: int = 4, instance: int = 0, **env: str
    ) -> subprocess.Popen[bytes]:
        Path(self.settings.storage_dir).mkdir(parents=True, exist_ok=True)
        log = open(Path(self.settings.storage_dir) / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli.main",
                "run",
                "--threads",
                str(threads),
                "--instance",
                str(instance),
            ],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for w in self.workers:
            w.stopping.set()
            w.drain()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.workers.clear()
        self.procs.clear()

    # -- jobs --------------------------------------------------------------------------------

    def submit(
        self,
        user_id: int,
        *,
        count: int = 1,
        credits: int | None = None,
        title: str = "Red ceramic mug",
        chat_id: int | None = None,
        **product: Any,
    ) -> list[int]:
        if credits is not None:
            self.client.grant(user_id, credits)
        res = self.client.submit_video(
            user_id=user_id,
            chat_id=chat_id,
            count=count,
            product={"title": title, "image_url": "https://example.test/p.jpg", **product},
        )
        return res.job_ids

    def submit_kind(self, kind: str, step: str, user_id: int, payload: dict[str, Any]) -> int:
        """One free job of a test-only kind (not in the registry), straight through SUBMIT."""
        from psycopg.types.json import Jsonb

        from worker.sql.jobs import SUBMIT

        answer = self.db.fetchone(
            SUBMIT,
            {
                "request_id": uuid.uuid4(),
                "user_id": user_id,
                "chat_id": user_id,
                "kind": kind,
                "step": step,
                "payload": Jsonb(payload),
                "price": 0,
                "count": 1,
                "deadline_seconds": 600,
                "idempotency_key": None,
                "fingerprint": kind,
                "cloned_from": None,
                "detail": f"a test {kind} job",
            },
        )
        assert answer is not None
        (job,) = answer["answer"]["job_ids"]
        return int(job)

    def wait(self, job_ids: list[int], timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until the jobs are terminal and their outbox messages settled."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.db.fetchall(
                "SELECT j.id, j.status, (SELECT count(*) FROM notifications n WHERE n.job_id = j.id"
                " AND n.status IN ('pending', 'retry', 'sending')) AS unsent"
                " FROM jobs j WHERE j.id = ANY(%s)",
                (job_ids,),
            )
            if len(rows) == len(job_ids) and all(
                r["status"] in TERMINAL and not r["unsent"] for r in rows
            ):
                return [self.client.job(j) for j in job_ids]
            if time.monotonic() > deadline:
                states = {r["id"]: r["status"] for r in rows}
                raise AssertionError(f"jobs not finished in {timeout} s: {states}")
            time.sleep(0.2)

    def events(self, job_id: int) -> list[str]:
        return [e["event"] for e in self.client.job(job_id)["events"]]

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        return self.sim.messages(chat_id)

    def paid_creates(self) -> int:
        return int(self.sim.stats()["paid_creates"])

    def ledger_ok(self) -> bool:
        from worker import ledger

        with self.db.transaction() as conn:
            return all(c.ok for c in ledger.check(conn))


@pytest.fixture
def pipeline(
    settings: Settings, db: Database, sim: RunningSimulator, tmp_path: Path
) -> Iterator[Pipeline]:
    sim.reset()
    sim.configure(_sim_defaults())
    overrides: dict[str, Any] = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "redis_namespace": settings.redis_namespace,
        "storage_dir": str(tmp_path / "storage"),
        "kie_api_keys": KIE_KEYS,
        "openai_api_keys": OPENAI_KEYS,
        "telegram_bot_token": BOT_TOKEN,
        "kie_base_url": sim.kie_url,
        "openai_base_url": sim.openai_url,
        "telegram_api_url": sim.telegram_url,
        "result_hosts": "127.0.0.1",  # the simulator's videos: http on loopback
        "result_allow_http": True,
        "kie_timeout": 2.0,
        "openai_timeout": 2.0,
        "telegram_timeout": 2.0,
        "kie_create_limit": "1000/1",
        "kie_query_limit": "1000/1",
        "backoff_base_seconds": 0.2,
        "backoff_max_seconds": 1.0,
        "lease_seconds": 5.0,
        "maintenance_interval_seconds": 0.5,
        "redispatch_after_seconds": 3.0,
        "video_deadline_seconds": 60.0,
        "drain_seconds": 10.0,
        "_env_file": None,
    }
    s = load_settings(**overrides)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KIE_", "OPENAI_", "TELEGRAM_"))
    }
    env.update({k.upper(): str(v) for k, v in overrides.items() if not k.startswith("_")})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    p = Pipeline(s, sim, db, env, overrides)
    yield p
    p.stop()


@pytest.fixture
def worker(pipeline: Pipeline) -> Iterator[WorkerProcess]:
    """A worker's runtime and services, driven by hand (no consumer threads)."""
    w = WorkerProcess(pipeline.settings, threads=1)
    w.db.open()
    yield w
    w.services.close()
    w.db.close()
    w.broker.close()
