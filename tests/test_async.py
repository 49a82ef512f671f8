"""The async twins: AsyncDatabase on psycopg's async pool, and AsyncClient for an asyncio bot."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import PRODUCT
from worker.client import AsyncClient, Client, InsufficientCredits
from worker.config import Settings
from worker.db import AsyncDatabase


def test_async_database_runs_transactions(settings: Settings) -> None:
    async def main() -> list[int]:
        db = await AsyncDatabase(settings.database_url, min_size=1, max_size=4).open()
        try:
            async with db.transaction() as conn:
                await conn.execute("CREATE TEMP TABLE t (x int)")  # temp: this connection only
                await conn.execute("INSERT INTO t VALUES (1), (2)")
                rows = await (await conn.execute("SELECT x FROM t ORDER BY x")).fetchall()
            return [r["x"] for r in rows]
        finally:
            await db.close()

    assert asyncio.run(main()) == [1, 2]


def test_async_client_has_the_same_api(client: Client) -> None:
    aclient = AsyncClient(client)

    async def main() -> None:
        await aclient.grant(77, 3, idempotency_key="async-grant")
        res = await aclient.submit_video(user_id=77, product=PRODUCT, count=3, idempotency_key="a1")
        assert res.available == 0 and len(res.job_ids) == 3
        again = await aclient.submit_video(
            user_id=77, product=PRODUCT, count=3, idempotency_key="a1"
        )
        assert again.replayed and again.job_ids == res.job_ids
        with pytest.raises(InsufficientCredits):
            await aclient.submit_video(user_id=77, product=PRODUCT)
        job = await aclient.job(res.job_ids[0])
        assert job["status"] == "queued" and job["events"][0]["event"] == "submitted"
        cancelled = await aclient.cancel(res.job_ids[0])
        assert cancelled["credits"] == "refunded"
        assert (await aclient.balance(77)).available == 1
        jobs = await aclient.jobs(user_id=77)
        assert len(jobs) == 3

    asyncio.run(main())
