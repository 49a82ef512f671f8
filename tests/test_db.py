"""The connection pools hand out the connection returned last (LIFO); writes outlive a dropped
connection."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from worker.db import AsyncDatabase, Database
from worker.db_retry import with_db_retry


def test_pool_hands_out_the_connection_returned_last(clean_db: str) -> None:
    with Database(clean_db, min_size=3, max_size=3) as db:
        with db.pool.connection() as a, db.pool.connection() as b, db.pool.connection() as c:
            pids = [conn.info.backend_pid for conn in (a, b, c)]
        # c returned first, then b, then a (the with statement unwinds in reverse).
        for _ in range(5):
            with db.pool.connection() as conn:
                assert conn.info.backend_pid == pids[0]
        with db.pool.connection() as x, db.pool.connection() as y:
            assert [x.info.backend_pid, y.info.backend_pid] == [pids[0], pids[1]]
        assert len(set(pids)) == 3


def test_async_pool_hands_out_the_connection_returned_last(clean_db: str) -> None:
    async def run() -> None:
        db = await AsyncDatabase(clean_db, min_size=2, max_size=2).open()
        try:
            async with db.pool.connection() as a, db.pool.connection() as b:
                pids = [a.info.backend_pid, b.info.backend_pid]
            for _ in range(5):
                async with db.pool.connection() as conn:
                    assert conn.info.backend_pid == pids[0]
        finally:
            await db.close()

    asyncio.run(run())


def test_a_write_outlives_its_connection_being_killed(clean_db: str) -> None:
    # with_db_retry: the first try is a plain call; a dropped connection is retried on a new one.
    with Database(clean_db, min_size=1, max_size=1) as db:
        with db.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(clean_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        tries: list[int] = []

        def write() -> int:
            with db.connection() as conn:
                tries.append(conn.info.backend_pid)
                row = conn.execute("SELECT 42 AS v").fetchone()
                assert row is not None
                return int(row["v"])

        assert with_db_retry(write, seconds=10) == 42
        assert len(tries) == 2 and tries[0] == pid and tries[1] != pid


def test_a_write_that_is_refused_is_not_retried(clean_db: str) -> None:
    with Database(clean_db, min_size=1, max_size=1) as db:
        tries: list[int] = []

        def write() -> None:
            tries.append(1)
            with db.connection() as conn:
                conn.execute("SELECT 1 / 0")

        with pytest.raises(psycopg.errors.DivisionByZero):
            with_db_retry(write, seconds=10)
        assert tries == [1]
