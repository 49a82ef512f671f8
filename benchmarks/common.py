"""Helpers shared by the benchmarks: a throwaway database and Redis namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from worker.config import Settings, load_settings
from worker.migrate import migrate

ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def scratch_settings(prefix: str, **overrides: object) -> Iterator[Settings]:
    """Settings on a new database and Redis namespace, both removed afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(ADMIN_URL)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    namespace = f"bench-{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url, create_database=False)
        yield load_settings(
            database_url=url, redis_namespace=namespace, _env_file=None, **overrides
        )
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        keys = list(r.scan_iter(f"{namespace}:*", count=1000))
        if keys:
            r.delete(*keys)
