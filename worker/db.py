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
retry (``worker.db_retry.with_db_retry``) gets a fresh one.

A pool never opens more than its ``max_size`` server connections, however many threads ask:
the others wait for one to come back (``getconn``'s timeout, 30 s, then ``PoolTimeout``, an
``OperationalError`` the retry helpers know). That is what lets 20 worker processes share a stock
``max_connections = 100`` (docs/deploy.md, the connection budget).

Behind PgBouncer in transaction pooling mode (``DATABASE_POOLER=pgbouncer``, or detected on each
new connection when ``auto``, the default) psycopg's prepared statements are turned off
(``prepare_threshold=None``): a statement prepared on one server connection does not exist on the
next one the pooler hands out. Nothing else here depends on the session: no session-level
advisory locks, ``SET`` or ``LISTEN``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import psycopg
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from worker.config import Settings

Connection = psycopg.Connection[DictRow]
AsyncConnection = psycopg.AsyncConnection[DictRow]

#: ``DATABASE_POOLER``: ``auto`` looks at each new connection, ``pgbouncer`` says there is one
#: (transaction or statement pooling), ``none`` that the connections reach PostgreSQL directly.
Pooler = Literal["auto", "pgbouncer", "none"]
POOLERS: tuple[Pooler, ...] = ("auto", "pgbouncer", "none")

log = logging.getLogger(__name__)

#: How PostgreSQL's pg_stat_activity names the workers' connections (`worker doctor` is
#: "worker-doctor").
APPLICATION_NAME = "worker"

_CONNECT_KWARGS: dict[str, Any] = {
    "row_factory": dict_row,
    "autocommit": True,
    "connect_timeout": 5,
    "application_name": APPLICATION_NAME,
    # Fail fast instead of hanging on a half-open connection after a network blip.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def behind_pooler(conn: psycopg.Connection[Any]) -> bool:
    """True when ``conn`` reaches PostgreSQL through a connection pooler.

    A pooler answers the start-up itself and hands the client a cancel key of its own making
    (PgBouncer: random bytes), so the backend pid the connection was told at start-up is not
    the pid of the server process that runs its statements. Directly connected, they are the
    same. One round trip, valid for any pooler mode and version, no admin console needed.
    """
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT pg_backend_pid()", prepare=False).fetchone()
    return row is None or int(row[0]) != conn.info.backend_pid


async def abehind_pooler(conn: psycopg.AsyncConnection[Any]) -> bool:
    """The async twin of :func:`behind_pooler`."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT pg_backend_pid()", prepare=False)
        row = await cur.fetchone()
    return row is None or int(row[0]) != conn.info.backend_pid


def _configure(pooler: str) -> Callable[[psycopg.Connection[Any]], None]:
    """The pools' ``configure`` hook: no prepared statements behind a pooler."""
    if pooler not in POOLERS:
        raise ValueError(f"DATABASE_POOLER must be one of {', '.join(POOLERS)}, got {pooler!r}")

    def configure(conn: psycopg.Connection[Any]) -> None:
        if pooler == "pgbouncer" or (pooler == "auto" and behind_pooler(conn)):
            conn.prepare_threshold = None

    return configure


def _aconfigure(pooler: str) -> Callable[[psycopg.AsyncConnection[Any]], Any]:
    _configure(pooler)  # the same check of the value

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        if pooler == "pgbouncer" or (pooler == "auto" and await abehind_pooler(conn)):
            conn.prepare_threshold = None

    return configure


class _OncePerMinute(logging.Filter):
    """Let psycopg_pool's "error connecting" warnings through once a minute per pool.

    While PostgreSQL refuses connections (down, or ``too many clients already``) the pool
    retries with a growing pause and would log every attempt; the operator needs to hear it
    once a minute, with how many were held back."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(("error connecting", "reconnection attempt")):
            return True
        key = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.every) < self.every:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last minute)"
        return True


_POOL_LOG_FILTER = _OncePerMinute()
logging.getLogger("psycopg.pool").addFilter(_POOL_LOG_FILTER)


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
    """A connection pool of at most ``max_size`` server connections (``DB_POOL_MIN``/
    ``DB_POOL_MAX``, 2–3 by default)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 3,
        name: str = "db",
        pooler: str = "auto",
    ):
        self.url = url
        self.pooler = pooler
        self.pool: ConnectionPool[Connection] = LifoConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=_CONNECT_KWARGS,
            configure=_configure(pooler),
            open=False,
            name=name,
            reconnect_timeout=60,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            pooler=settings.database_pooler,
        )

    def open(self, wait: bool = True, timeout: float = 10.0) -> Database:
        self.pool.open(wait=wait, timeout=timeout)
        return self

    def wait_reachable(
        self,
        stop: threading.Event | None = None,
        *,
        on_wait: Callable[[str], object] | None = None,
        log_every: float = 60.0,
        max_pause: float = 15.0,
    ) -> bool:
        """Block until PostgreSQL accepts a connection and answers ``SELECT 1``; False if
        ``stop`` was set first.

        For start-up: it never gives up (a process that exits while the database is down or
        full only joins a restart loop, and its retries take slots others need). It tries with
        one short-lived connection outside the pool, pausing 0.5 s, 1 s, 2 s ... up to
        ``max_pause``, and logs (and calls ``on_wait`` with) the reason once every
        ``log_every`` seconds."""
        started = time.monotonic()
        last_said = -log_every
        pause = 0.5
        while stop is None or not stop.is_set():
            try:
                with connect(self.url, autocommit=True, pooler=self.pooler) as conn:
                    conn.execute("SELECT 1")
                if time.monotonic() - started > 1.0:
                    log.info("PostgreSQL answers after %.0f s", time.monotonic() - started)
                return True
            except psycopg.Error as exc:
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                waited = time.monotonic() - started
                if waited - last_said >= log_every:
                    last_said = waited
                    log.warning("waiting for PostgreSQL (%.0f s so far): %s", waited, reason)
                    if on_wait is not None:
                        on_wait(reason)
            if stop is not None:
                if stop.wait(pause):
                    break
            else:
                time.sleep(pause)
            pause = min(pause * 2, max_pause)
        return False

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

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 3,
        name: str = "adb",
        pooler: str = "auto",
    ):
        self.url = url
        self.pool: AsyncConnectionPool[AsyncConnection] = AsyncLifoConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=_CONNECT_KWARGS,
            configure=_aconfigure(pooler),
            open=False,
            name=name,
            reconnect_timeout=60,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncDatabase:
        return cls(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            pooler=settings.database_pooler,
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


def connect(url: str, *, autocommit: bool = False, pooler: str = "auto") -> Connection:
    """A single connection outside the pool (migrations, a start-up probe)."""
    conn = psycopg.connect(url, **{**_CONNECT_KWARGS, "autocommit": True})
    try:
        _configure(pooler)(conn)
        conn.autocommit = autocommit
    except BaseException:
        conn.close()
        raise
    return conn
