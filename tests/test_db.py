"""The connection pools hand out the connection returned last (LIFO)."""

from __future__ import annotations

import asyncio

from worker.db import AsyncDatabase, Database


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
