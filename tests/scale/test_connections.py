"""Few connections per process (issue #21): a `worker run` holds at most ``DB_POOL_MAX`` server
connections whatever its thread count, and at start-up it waits for PostgreSQL (down, missing or
full) instead of exiting, telling systemd why, and says ``READY=1`` only once it answers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.pipeline.conftest import Pipeline, wait_for
from tests.pipeline.test_sd_notify import NotifySocket, start_worker
from worker.migrate import migrate

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _with(url: str, *, user: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{user}@{host}" if user else parts.netloc
    path = f"/{database}" if database else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


@pytest.fixture
def limited_role(pipeline: Pipeline) -> Iterator[str]:
    """A login role that may read and write every table, allowed ``CONNECTION LIMIT 2``: a third
    connection attempt by it fails with ``too many connections for role``."""
    role = f"wt_pool_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(
            f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 2 IN ROLE pg_read_all_data, '
            "pg_write_all_data"
        )
    yield role
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_eight_threads_share_two_connections(pipeline: Pipeline, limited_role: str) -> None:
    """DB_POOL_MAX=2 with 8 threads, the lease keeper and the maintenance leader: 24 videos get
    made while a sampler never sees the process hold more than 2 server connections, and no
    attempt at a third is refused (it is never made)."""
    proc = pipeline.start_process(
        threads=8,
        instance=1,
        DATABASE_URL=_with(pipeline.settings.database_url, user=limited_role),
        DB_POOL_MAX="2",
        DB_POOL_MIN="1",
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (limited_role,)
                ).fetchone()
                peak = max(peak, int(row[0]) if row else 0)
                time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        jobs: list[int] = []
        for user in range(8):
            jobs += pipeline.submit(400 + user, count=3, credits=3)
        done = pipeline.wait(jobs, timeout=120)
    finally:
        stop.set()
        sampler.join(5)
    assert [j["status"] for j in done] == ["succeeded"] * 24
    assert proc.poll() is None
    assert 1 <= peak <= 2, peak
    log = (pipeline.settings.storage_dir / "worker-0.log").read_text()
    assert "too many connections" not in log, log[-3000:]
    assert pipeline.ledger_ok()


def test_start_up_waits_for_the_database_then_says_ready(
    pipeline: Pipeline, notify: NotifySocket
) -> None:
    """The database does not exist yet: the worker neither exits nor says READY=1; it says why
    it waits (STATUS, and EXTEND_TIMEOUT_USEC so systemd's start timeout does not kill it), logs
    it once, and is READY soon after the database appears (`worker migrate`)."""
    name = f"wt_late_{os.getpid()}_{time.monotonic_ns() % 100000}"
    url = _with(pipeline.settings.database_url, database=name)
    proc = start_worker(pipeline, notify, threads=2, DATABASE_URL=url)
    try:
        notify.expect("EXTEND_TIMEOUT_USEC=120000000", 20)
        status = [s for s in notify.states() if s.startswith("STATUS=waiting for PostgreSQL")]
        assert status and "does not exist" in status[0], notify.states()
        time.sleep(5)  # several attempts (0.5, 1, 2 s apart ...)
        assert proc.poll() is None, "the worker exited while waiting"
        assert "READY=1" not in notify.states()
        migrate(url)  # creates the database and its schema
        notify.expect("READY=1", 40)
        log = next(pipeline.settings.storage_dir.glob("sd-worker-*.log")).read_text()
        assert log.count("waiting for PostgreSQL") == 1, log  # once a minute, not per attempt
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sigterm_while_waiting_for_the_database_exits_cleanly(
    pipeline: Pipeline, notify: NotifySocket
) -> None:
    url = _with(pipeline.settings.database_url, database="wt_never_created")
    proc = start_worker(pipeline, notify, threads=1, DATABASE_URL=url)
    notify.expect("EXTEND_TIMEOUT_USEC=120000000", 20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "READY=1" not in notify.states()


def test_a_role_at_its_connection_limit_is_waited_for(
    pipeline: Pipeline, notify: NotifySocket, limited_role: str
) -> None:
    """PostgreSQL full (here: the role's limit, as `too many clients already` would be): the
    worker waits and becomes READY once a slot frees up."""
    url = _with(pipeline.settings.database_url, user=limited_role)
    holders = [psycopg.connect(url, autocommit=True) for _ in range(2)]
    try:
        proc = start_worker(pipeline, notify, threads=2, DATABASE_URL=url, DB_POOL_MAX="2")
        notify.expect("EXTEND_TIMEOUT_USEC=120000000", 20)
        assert any("too many connections" in s for s in notify.states()), notify.states()
        time.sleep(2)
        assert proc.poll() is None and "READY=1" not in notify.states()
    finally:
        for c in holders:
            c.close()
    notify.expect("READY=1", 40)
    wait_for(lambda: proc.poll() is None, 1, "the worker alive")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_no_step_holds_its_connection_across_an_http_call(pipeline: Pipeline) -> None:
    """One pooled connection, four threads, OpenAI answering after 2 s: the four prompt calls
    overlap. A step that kept its connection through its HTTP exchange would make the others
    wait for it (they claim their job first), so the calls would come 2 s apart."""
    pipeline.reconfigure(db_pool_max=1, db_pool_min=1, openai_timeout=6.0)
    pipeline.sim.configure({"openai": {"rate_timeout": 1.0, "timeout_seconds": 2.0}})
    worker = pipeline.start_worker(threads=4)
    assert worker.db.pool.max_size == 1
    jobs = [job for user in range(4) for job in pipeline.submit(500 + user, credits=1)]
    wait_for(lambda: len(pipeline.sim.calls("openai")) >= 4, 30, "four prompt calls")
    starts = sorted(c["at"] for c in pipeline.sim.calls("openai"))[:4]
    assert starts[3] - starts[0] < 1.5, starts  # all four in flight together
    pipeline.sim.configure({"openai": {"rate_timeout": 0.0}})
    done = pipeline.wait(jobs, timeout=60)
    assert [j["status"] for j in done] == ["succeeded"] * 4


def test_a_pool_that_cannot_connect_says_so_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """psycopg_pool retries a failed connection with a growing pause and warns each time; the
    worker lets one warning through a minute, saying how many it held back."""
    from worker.db import Database

    caplog.set_level("WARNING", logger="psycopg.pool")
    db = Database("postgresql://postgres@127.0.0.1:1/nowhere", min_size=2, max_size=2, name="h1")
    db.open(wait=False)
    try:
        time.sleep(4)  # attempts at about 0, 1, 2 and 4 s for each of the two connections
    finally:
        db.close()
    said = [r.getMessage() for r in caplog.records if "error connecting" in r.getMessage()]
    assert len(said) == 1, said
