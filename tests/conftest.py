"""Shared fixtures: a private PostgreSQL database per test session, a private Redis namespace
per test, real Dramatiq. Nothing here mocks PostgreSQL, Redis or Dramatiq."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from tests.loop_server import LoopServer
from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database
from worker.embedded import EmbeddedServers
from worker.migrate import migrate

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Wipe every table but keep the schema: far faster than a fresh database per test.
_RESET = """
TRUNCATE job_events, notifications, transfers, jobs, requests, accounts, leaders
    RESTART IDENTITY CASCADE;
INSERT INTO accounts (code, no_overdraft) VALUES ('system:issuance', false), ('system:revenue', false);
"""


#: The embedded PostgreSQL and Redis this session started (worker/embedded.py), if any.
EMBEDDED: EmbeddedServers | None = None


def pytest_configure(config: pytest.Config) -> None:
    """On a machine where nothing answers at 127.0.0.1 (and TEST_DATABASE_ADMIN_URL and
    TEST_REDIS_URL are unset), start an embedded PostgreSQL and Redis for the whole session and
    point both variables at them. It runs before any test module is imported: several read the
    variables at import. They are real servers, so nothing here mocks PostgreSQL or Redis."""
    global ADMIN_URL, EMBEDDED, REDIS_URL
    if {"TEST_DATABASE_ADMIN_URL", "TEST_REDIS_URL"} & os.environ.keys():
        return
    from worker.embedded import answers, start

    if answers(ADMIN_URL) and answers(REDIS_URL):
        return
    EMBEDDED = start()
    ADMIN_URL = os.environ["TEST_DATABASE_ADMIN_URL"] = EMBEDDED.database_url
    REDIS_URL = os.environ["TEST_REDIS_URL"] = EMBEDDED.redis_url
    # tests/test_benchmarks.py runs benchmarks/, which reads its own variables
    os.environ.setdefault("BENCH_DATABASE_ADMIN_URL", ADMIN_URL)
    os.environ.setdefault("BENCH_REDIS_URL", REDIS_URL)


def pytest_unconfigure(config: pytest.Config) -> None:
    if EMBEDDED is not None:
        EMBEDDED.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    if EMBEDDED is None:
        return None
    return (
        "nothing answered at 127.0.0.1: embedded PostgreSQL at "
        f"{EMBEDDED.database_url} and Redis at {EMBEDDED.redis_url} ({EMBEDDED.seconds:g} s)"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-full", action="store_true", help="run the full chaos suite (minutes, not seconds)"
    )


def _db_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(prefix: str = "wt") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _db_url(name)
    migrate(url, create_database=False)
    return url


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def clean_db(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_RESET)
    return database_url


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    namespace = f"wtest-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def settings(clean_db: str, redis_namespace: str, tmp_path: object) -> Settings:
    return load_settings(
        database_url=clean_db,
        redis_url=REDIS_URL,
        redis_namespace=redis_namespace,
        storage_dir=str(tmp_path),
        _env_file=None,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url, min_size=1, max_size=30).open()
    yield database
    database.close()


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[Client]:
    c = Client(settings, db=db)
    yield c
    c.close()


PRODUCT = {"title": "Red ceramic mug", "image_url": "https://example.test/mug.jpg"}


class RunningWebhooks(LoopServer):
    """`worker webhooks` (its :class:`WebhookServer`) on its own event loop in a daemon thread,
    listening on a free port: the code under test reaches it over real HTTP."""

    def __init__(self, settings: Settings, **limits: float) -> None:
        from worker.webhook_server import WebhookServer

        self.server = WebhookServer(settings, **limits)  # type: ignore[arg-type]
        super().__init__(self.server.start, self.server.stop, "webhooks")


@pytest.fixture
def webhooks(settings: Settings) -> Iterator[RunningWebhooks]:
    running = RunningWebhooks(settings)
    yield running
    running.stop()
