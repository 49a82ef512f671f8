"""Behind a real PgBouncer (Debian's package) in transaction pooling mode: the pooler is detected
and prepared statements are off, the leader lease and `worker migrate` work, and videos go from
submit to delivery through it with `worker run` processes that were told nothing about it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from simulator.config import SimConfig
from simulator.testing import RunningSimulator, start_in_thread
from tests.pgbouncer import PgBouncer, pgbouncer_binary
from worker import ledger
from worker.client import Client
from worker.config import load_settings
from worker.db import Database, behind_pooler, connect
from worker.leader import LeaderElector, current
from worker.migrate import applied_versions, discover, migrate

pytestmark = pytest.mark.skipif(
    pgbouncer_binary() is None,
    reason="pgbouncer is not installed (Debian package pgbouncer; .ci/run installs it)",
)

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BOT_TOKEN = "4242:bouncer-telegram-token"


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    with PgBouncer(ADMIN_URL, pool_size=4) as running:
        yield running


@pytest.fixture
def via_bouncer(bouncer: PgBouncer, clean_db: str) -> str:
    """The test session's database, through PgBouncer."""
    return bouncer.url_for(clean_db)


def test_the_pooler_is_detected_and_prepared_statements_are_off(
    via_bouncer: str, clean_db: str
) -> None:
    with connect(via_bouncer, autocommit=True) as conn:
        assert behind_pooler(conn) and conn.prepare_threshold is None
    with connect(clean_db, autocommit=True) as conn:
        assert not behind_pooler(conn) and conn.prepare_threshold == 5
    with connect(clean_db, autocommit=True, pooler="pgbouncer") as conn:
        assert conn.prepare_threshold is None  # DATABASE_POOLER=pgbouncer: no detection needed
    with Database(via_bouncer, min_size=1, max_size=2) as db, db.connection() as conn:
        assert conn.prepare_threshold is None
    with pytest.raises(ValueError, match="DATABASE_POOLER"):
        Database(via_bouncer, pooler="pgbouncr")


def _hammer(url: str, pooler: str, clients: int = 6, rounds: int = 40) -> list[str]:
    """Several pools' worth of clients running the same statement often enough for psycopg to
    prepare it; returns the errors they met."""
    errors: list[str] = []

    def one() -> None:
        try:
            with connect(url, autocommit=True, pooler=pooler) as conn:
                for i in range(rounds):
                    conn.execute("SELECT count(*) FROM jobs WHERE id > %s", (i,)).fetchone()
        except psycopg.Error as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_prepared_statements_break_behind_pgbouncer_unless_turned_off(via_bouncer: str) -> None:
    # The fault is real: told there is no pooler, psycopg prepares and the statements land on
    # server connections that never saw (or already have) them.
    broken = _hammer(via_bouncer, "none")
    assert broken and all("prepared statement" in e for e in broken), broken
    assert _hammer(via_bouncer, "auto") == []


def test_the_leader_lease_through_pgbouncer(via_bouncer: str) -> None:
    with Database(via_bouncer, min_size=1, max_size=2) as db:
        a = LeaderElector(db, ttl=5.0, name="test", holder="host-a:1:1:aa")
        b = LeaderElector(db, ttl=5.0, name="test", holder="host-b:2:1:bb")
        assert a.elect() and not b.elect()
        assert a.elect() and a.is_leader  # renewed, still the leader
        who = current(db, "test")
        assert who is not None and who.holder == "host-a:1:1:aa" and who.live
        a.resign()
        assert not a.is_leader and b.elect()
        assert (w := current(db, "test")) is not None and w.holder == "host-b:2:1:bb"


def test_concurrent_migrate_through_pgbouncer(bouncer: PgBouncer) -> None:
    name = f"wt_bouncer_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = bouncer.url_for(ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        results: list[int] = []

        def run() -> None:
            results.append(len(migrate(url, create_database=False)))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == [0, 0, 0, len(discover())]
        with connect(url, autocommit=True) as conn:
            assert sorted(applied_versions(conn)) == [m.version for m in discover()]  # type: ignore[arg-type]
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    running = start_in_thread(SimConfig())
    yield running
    running.stop()


def test_videos_from_submit_to_delivery_through_pgbouncer(
    bouncer: PgBouncer,
    via_bouncer: str,
    redis_namespace: str,
    sim: RunningSimulator,
    tmp_path: Path,
) -> None:
    """Two `worker run` processes and the bot's client, all through PgBouncer in transaction
    mode with 4 server connections, with nothing telling them a pooler is there."""
    sim.reset()
    sim.configure(
        {
            "kie": {"render_seconds": 0.5, "create_limit": 0, "query_limit": 0},
            "telegram": {"bot_token": BOT_TOKEN},
        }
    )
    values: dict[str, Any] = {
        "database_url": via_bouncer,
        "redis_url": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "redis_namespace": redis_namespace,
        "storage_dir": str(tmp_path / "storage"),
        "kie_api_keys": "k1=sim-kie-1",
        "openai_api_keys": "o1=sim-openai-1",
        "telegram_bot_token": BOT_TOKEN,
        "kie_base_url": sim.kie_url,
        "openai_base_url": sim.openai_url,
        "telegram_api_url": sim.telegram_url,
        "kie_create_limit": "1000/1",
        "kie_query_limit": "1000/1",
        "lease_seconds": 5.0,
        "maintenance_interval_seconds": 0.5,
        "drain_seconds": 10.0,
    }
    settings = load_settings(_env_file=None, **values)
    ours = ("KIE_", "OPENAI_", "TELEGRAM_", "DATABASE_", "DB_POOL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update({k.upper(): str(v) for k, v in values.items()})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    # The simulator serves its videos over http on loopback.
    env.update({"RESULT_ALLOW_HTTP": "true", "RESULT_HOSTS": "127.0.0.1"})
    (tmp_path / "storage").mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli.main",
                "run",
                "--threads",
                "4",
                "--instance",
                str(i),
            ],
            env=env,
            stdout=(tmp_path / f"worker-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in (1, 2)
    ]
    db = Database(via_bouncer, min_size=1, max_size=2).open()
    try:
        client = Client(settings, db=db)
        client.grant(31, 6)
        jobs = client.submit_video(
            user_id=31, count=3, product={"title": "Mug", "image_url": "https://x.test/a.jpg"}
        ).job_ids
        jobs += client.submit_video(
            user_id=31, count=3, product={"title": "Cup", "image_url": "https://x.test/b.jpg"}
        ).job_ids
        deadline = time.monotonic() + 90
        while True:
            rows = db.fetchall(
                "SELECT status, error FROM jobs WHERE id = ANY(%s)"
                " AND status IN ('queued', 'running', 'succeeded')",
                (jobs,),
            )
            if len(rows) < len(jobs):
                failed = db.fetchall(
                    "SELECT id, error FROM jobs WHERE id = ANY(%s) AND status = 'failed'", (jobs,)
                )
                pytest.fail(f"failed: {failed}")
            if all(r["status"] == "succeeded" for r in rows):
                break
            logs = "".join(
                (tmp_path / f"worker-{i}.log").read_text(errors="replace")[-1500:] for i in (1, 2)
            )
            assert time.monotonic() < deadline, f"not delivered: {rows}\n{logs}"
            assert all(p.poll() is None for p in procs), logs
            time.sleep(0.2)
        videos = [m for m in sim.messages(31) if m["method"] == "sendVideo"]
        assert len(videos) == 6  # every video delivered, once
        assert int(sim.stats()["paid_creates"]) == 6
        with db.transaction() as conn:
            assert all(c.ok for c in ledger.check(conn))
        balance = client.balance(31)
        assert (balance.available, balance.held, balance.spent) == (0, 0, 6)  # six captured
        # The maintenance leader elected itself through PgBouncer too.
        who = current(db)
        assert (
            who is not None and who.live and who.holder.split(":")[1] in {str(p.pid) for p in procs}
        )
        assert bouncer.servers() <= 4
        logs = "".join((tmp_path / f"worker-{i}.log").read_text() for i in (1, 2))
        assert "prepared statement" not in logs, logs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        db.close()
