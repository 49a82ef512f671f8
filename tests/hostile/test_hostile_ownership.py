"""The ownership guard (issue 22, finding 13): the bot takes job ids from ``callback_data``,
which a modified client can forge, so clone, retry, cancel and job take an optional ``user_id``
and refuse another user's job with :class:`NotYourJob` (an :class:`UnknownJob`: a bot treats
both alike), changing nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import PRODUCT
from worker.client import AsyncClient, Client, NotYourJob, UnknownJob
from worker.db import Database
from worker.errors import InvalidRequest

OWNER, OTHER = 7, 8


def _state(db: Database) -> tuple[object, ...]:
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM jobs) j, (SELECT count(*) FROM transfers) t,"
        " (SELECT count(*) FROM job_events) e,"
        " (SELECT string_agg(status::text, ',' ORDER BY id) FROM jobs) s"
    )
    assert row is not None
    return tuple(row.values())


@pytest.fixture
def job(client: Client) -> int:
    client.grant(OWNER, 10)
    client.grant(OTHER, 10)
    return client.submit_video(user_id=OWNER, product=PRODUCT).job_ids[0]


def test_another_users_job_is_refused_and_nothing_changes(
    client: Client, db: Database, job: int
) -> None:
    before = _state(db)
    calls = [
        lambda: client.job(job, user_id=OTHER),
        lambda: client.clone(job, user_id=OTHER),
        lambda: client.cancel(job, user_id=OTHER),
    ]
    for call in calls:
        with pytest.raises(NotYourJob) as err:
            call()
        assert isinstance(err.value, UnknownJob)
        assert err.value.job_id == job and err.value.user_id == OTHER
    client.cancel(job, user_id=OWNER)  # cancelled: retryable
    before = _state(db)
    with pytest.raises(NotYourJob):
        client.retry(job, user_id=OTHER)
    assert _state(db) == before
    assert client.balance(OTHER).available == 10


def test_the_owner_passes_the_guard(client: Client, job: int) -> None:
    assert client.job(job, user_id=OWNER)["id"] == job
    clone = client.clone(job, user_id=OWNER)
    assert client.job(clone.job_ids[0])["user_id"] == OWNER
    assert client.cancel(clone.job_ids[0], user_id=OWNER)["status"] == "cancelled"


def test_the_guard_checks_its_user_id(client: Client, job: int) -> None:
    for bad in (0, -1, "7", True):
        with pytest.raises(InvalidRequest):
            client.job(job, user_id=bad)  # type: ignore[arg-type]


def test_the_async_twin_guards_too(client: Client, job: int) -> None:
    ac = AsyncClient(client)

    async def go() -> None:
        with pytest.raises(NotYourJob):
            await ac.job(job, user_id=OTHER)
        with pytest.raises(NotYourJob):
            await ac.cancel(job, user_id=OTHER)
        with pytest.raises(NotYourJob):
            await ac.clone(job, user_id=OTHER)
        assert (await ac.job(job, user_id=OWNER))["id"] == job

    asyncio.run(go())
