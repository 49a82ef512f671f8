"""PostgreSQL access through psycopg 3 connection pools, sync and async twins.

Rows come back as dicts. Pooled connections are in autocommit mode: a single statement
(``fetchone``, ``fetchall``, ``connection()``) is one round trip, and ``transaction()`` wraps
several statements in BEGIN/COMMIT. Nothing holds a connection across an HTTP call.

The pools hand out the connection returned last (LIFO), not the one idle longest (psycopg_pool's
FIFO): a bot submitting from one thread then talks to one warm backend instead of alternating
between two, which cost about 150 µs a submit here (benchmarks/submit.py), and connections a
quiet process no longer needs sit at the far end of the queue where ``max_idle`` closes them.

Connections are not health-checked when borrowed (that is a round trip per use): a connection
broken by a server restart fails its first statement, is discarded by the pool, and the caller's
retry (``worker.steps.with_db_retry``) gets a fresh one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from worker.config import Settings

Connection = psycopg.Connection[DictRow]
AsyncConnection = psycopg.AsyncConnection[DictRow]

_CONNECT_KWARGS: dict[str, Any] = {
    "row_factory": dict_row,
    "autocommit": True,
    "connect_timeout": 5,
    "application_name": "video-worker",
    # Fail fast instead of hanging on a half-open connection after a network blip.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class LifoConnectionPool(ConnectionPool[Connection]):
    """A :class:`ConnectionPool` that hands out the most recently returned connection first."""

    def _get_ready_connection(self, timeout: float | None) -> Connection | None:
        # Called under the pool's lock. The pool takes from the left and returns to the right;
        # rotating brings the newest connection to the left. tests/test_db.py checks the order.
        if self._pool:
            self._pool.rotate(1)
        return super()._get_ready_connection(timeout)


class AsyncLifoConnectionPool(AsyncConnectionPool[AsyncConnection]):
    """The async twin of :class:`LifoConnectionPool`."""

    async def _get_ready_connection(self, timeout: float | None) -> AsyncConnection | None:
        if self._pool:
            self._pool.rotate(1)
        return await super()._get_ready_connection(timeout)


class Database:
    """A connection pool (default 2–10 connections, ``DB_POOL_MIN``/``DB_POOL_MAX``)."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10, name: str = "db"):
        self.url = url
        self.pool: ConnectionPool[Connection] = LifoConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=_CONNECT_KWARGS,
            open=False,
            name=name,
            reconnect_timeout=60,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )

    def open(self, wait: bool = True, timeout: float = 10.0) -> Database:
        self.pool.open(wait=wait, timeout=timeout)
        return self

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Database:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection in autocommit mode: each statement is its own transaction."""
        with self.pool.connection() as conn:
            yield conn

    def fetchone(self, query: str, params: Any = None) -> dict[str, Any] | None:
        """One statement, one round trip (its own transaction)."""
        with self.pool.connection() as conn:
            return conn.execute(query, params).fetchone()

    def fetchall(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            return conn.execute(query, params).fetchall()


class AsyncDatabase:
    """The async twin of :class:`Database`."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10, name: str = "adb"):
        self.url = url
        self.pool: AsyncConnectionPool[AsyncConnection] = AsyncLifoConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=_CONNECT_KWARGS,
            open=False,
            name=name,
            reconnect_timeout=60,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncDatabase:
        return cls(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )

    async def open(self, wait: bool = True, timeout: float = 10.0) -> AsyncDatabase:
        await self.pool.open(wait=wait, timeout=timeout)
        return self

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.pool.connection() as conn, conn.transaction():
            yield conn


def connect(url: str, *, autocommit: bool = False) -> Connection:
    """A single connection outside the pool (migrations, the maintenance leader's lock)."""
    return psycopg.connect(url, **{**_CONNECT_KWARGS, "autocommit": autocommit})
