"""Honest waits at submit (worker.admission): ``eta_seconds`` grows with the jobs waiting at the
create limit ahead of the request, and a request over the limit is refused as ``Busy`` before
anything is written. The backlog is made of real jobs that reached the gate (``gate_enter``,
the statement a worker runs there)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from jobs.video import KIND
from jobs.video.models import DEFAULT_CHAIN, get_model
from jobs.video.tiers import DELIVERY_SECONDS
from worker.client import AsyncClient, Busy, Client, RequestRefused
from worker.config import Settings, load_settings
from worker.db import Database
from worker.sql import gate as q

PRODUCT = {"title": "Red ceramic mug", "image_url": "https://example.test/mug.jpg"}
#: One account (two keys of it) at 10 creates per 10 s: 0.95 slots a second, paced.
KEYS = "k1=sim-kie-1@acct,k2=sim-kie-2@acct"
#: What the catalog says of the default chain's first model, plus delivery.
AFTER = float(get_model(DEFAULT_CHAIN[0]).render_seconds)


@pytest.fixture
def make(settings: Settings, db: Database) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def factory(**overrides: Any) -> Client:
        s = load_settings(
            **{
                "database_url": settings.database_url,
                "redis_url": settings.redis_url,
                "redis_namespace": settings.redis_namespace,
                "storage_dir": str(settings.storage_dir),
                "kie_api_keys": KEYS,
                "kie_create_limit": "10/10",
                "_env_file": None,
                **overrides,
            }
        )
        client = Client(s, db=db)
        client.admission.ttl = 0.0  # read the backlog afresh at every submit
        made.append(client)
        return client

    yield factory
    for c in made:
        c.close()


def _at_gate(client: Client, job_ids: list[int]) -> None:
    """The jobs reach the create gate (as the submit step's key request would make them)."""
    for job_id in job_ids:
        user = client.db.fetchone(
            "UPDATE jobs SET step = 'submit' WHERE id = %s RETURNING user_id", (job_id,)
        )
        assert user is not None
        client.db.fetchone(
            q.ENTER,
            {
                "id": job_id,
                "gate": "video",
                "user_id": user["user_id"],
                "priority": 0,
                "fair": client.settings.fair_order,
                "step": "submit",
                "before": [],
                "width": 0,  # waiting: none passes
            },
        )


def _waiting_users(client: Client, users: range) -> None:
    """One waiting job for each of ``users``."""
    jobs: list[int] = []
    for user in users:
        client.grant(user, 1)
        jobs += client.submit_video(user_id=user, product=PRODUCT).job_ids
    _at_gate(client, jobs)


def _counts(db: Database) -> dict[str, int]:
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM requests) AS requests, (SELECT count(*) FROM jobs) AS jobs,"
        " (SELECT count(*) FROM transfers) AS transfers,"
        " (SELECT count(*) FROM job_events) AS events,"
        " (SELECT count(*) FROM notifications) AS notifications"
    )
    assert row is not None
    return {k: int(v) for k, v in row.items()}


def _refusals() -> float:
    return REGISTRY.get_sample_value("worker_busy_refusals_total", {"kind": "video"}) or 0.0


def test_busy_changes_nothing_and_carries_the_estimate(
    make: Callable[..., Client], db: Database
) -> None:
    client = make(admission_max_wait_seconds=20.0)
    _waiting_users(make(), range(100, 130))  # 30 users' jobs wait for a create slot
    client.grant(7, 10)
    before, balance, refused = _counts(db), client.balance(7), _refusals()
    with pytest.raises(Busy) as caught:
        client.submit_video(user_id=7, product=PRODUCT, count=3, idempotency_key="first")
    busy = caught.value
    assert isinstance(busy, RequestRefused)
    # The wait for its last slot: the prompt, then 30 jobs ahead and its own first two.
    assert busy.max_wait_seconds == 20.0
    assert busy.wait_seconds == pytest.approx(5.0 + 32 * 10.5 / 10, abs=0.2)
    # The estimate to the last video adds the render and the delivery.
    assert busy.eta_seconds == pytest.approx(busy.wait_seconds + AFTER + DELIVERY_SECONDS)
    assert _counts(db) == before and client.balance(7) == balance
    assert _refusals() == refused + 1
    # The key was not used: the same request with a higher limit goes through, not a replay.
    relaxed = make(admission_max_wait_seconds=3600.0)
    res = relaxed.submit_video(user_id=7, product=PRODUCT, count=3, idempotency_key="first")
    assert not res.replayed and len(res.job_ids) == 3
    assert res.eta_seconds is not None and res.eta_seconds == pytest.approx(busy.eta_seconds)


def test_the_async_client_raises_the_same(make: Callable[..., Client], db: Database) -> None:
    client = make(admission_max_wait_seconds=1.0)  # shorter than the prompt alone
    client.grant(8, 5)
    before = _counts(db)

    async def submit() -> None:
        await AsyncClient(client).submit_video(user_id=8, product=PRODUCT)

    with pytest.raises(Busy) as caught:
        asyncio.run(submit())
    assert caught.value.wait_seconds > 1.0 and _counts(db) == before


def test_eta_grows_with_the_backlog_ahead(make: Callable[..., Client]) -> None:
    client = make()
    client.grant(1, 100)
    idle = client.submit_video(user_id=1, product=PRODUCT).eta_seconds
    assert idle is not None and idle == pytest.approx(5.0 + AFTER + DELIVERY_SECONDS, abs=0.2)
    # 30 users with one job each wait at the gate: a new user's job waits behind about 30.
    _waiting_users(client, range(100, 130))
    client.grant(2, 100)
    one = client.submit_video(user_id=2, product=PRODUCT).eta_seconds
    per_slot = 10.5 / 10
    assert one == pytest.approx(idle + 30 * per_slot, abs=1.5)
    # Its last of five comes four rounds later.
    client.grant(3, 5)
    five = client.submit_video(user_id=3, product=PRODUCT, count=5).eta_seconds
    assert one is not None and five is not None and five > one


def test_a_heavy_user_waits_for_its_own_backlog_not_others(make: Callable[..., Client]) -> None:
    client = make()
    client.grant(1, 100)
    heavy = client.submit_video(user_id=1, product=PRODUCT, count=5).job_ids
    heavy += client.submit_video(user_id=1, product=PRODUCT, count=5).job_ids
    _at_gate(client, heavy)
    client.grant(2, 1)
    light = client.submit_video(user_id=2, product=PRODUCT).eta_seconds
    more = client.submit_video(user_id=1, product=PRODUCT).eta_seconds
    assert more is not None and light is not None
    # Fair order: the light user's job is served in the current round (behind the heavy user's
    # first); the heavy user's next one after its ten and the light user's.
    assert light == pytest.approx(5.0 + 10.5 / 10 + AFTER + DELIVERY_SECONDS, abs=0.2)
    assert more - light == pytest.approx(10 * 10.5 / 10, abs=0.2)


def test_in_submit_order_everyone_waits_for_the_whole_backlog(
    make: Callable[..., Client],
) -> None:
    client = make(fair_order=False)
    idle = client.admission.estimate(KIND, {}, count=1)
    client.grant(1, 100)
    heavy = client.submit_video(user_id=1, product=PRODUCT, count=5).job_ids
    heavy += client.submit_video(user_id=1, product=PRODUCT, count=5).job_ids
    _at_gate(client, heavy)
    client.grant(2, 1)
    light = client.submit_video(user_id=2, product=PRODUCT).eta_seconds
    assert idle is not None and light == pytest.approx(idle.eta + 10 * 10.5 / 10, abs=1.0)


def test_the_default_limit_is_the_deadline_less_render_and_delivery(
    make: Callable[..., Client], db: Database
) -> None:
    # One create a minute (63 s paced): a job may wait 400 - render - delivery = 205 s for it.
    client = make(video_deadline_seconds=400.0, kie_create_limit="1/60")
    payload = KIND.validate(PRODUCT, client.settings)
    limit = client.admission.max_wait(KIND, payload)
    assert limit == pytest.approx(400.0 - AFTER - DELIVERY_SECONDS)
    client.grant(1, 10)
    assert client.submit_video(user_id=1, product=PRODUCT, idempotency_key="k").eta_seconds
    # Three jobs ahead (two waiting, user 1's in its first steps): 5 + 3 × 63 s = 194 s,
    # admitted; four (user 2's too): 257 s, refused.
    _waiting_users(client, range(200, 202))
    client.grant(2, 10)
    assert client.submit_video(user_id=2, product=PRODUCT).eta_seconds
    client.grant(3, 10)
    before = _counts(db)
    with pytest.raises(Busy) as caught:
        client.submit_video(user_id=3, product=PRODUCT)
    assert caught.value.max_wait_seconds == pytest.approx(limit)
    assert caught.value.wait_seconds == pytest.approx(5.0 + 4 * 63.0, abs=0.5)
    assert _counts(db) == before
    # A replay of a request accepted before is answered, never refused.
    replay = client.submit_video(user_id=1, product=PRODUCT, idempotency_key="k")
    assert replay.replayed and replay.eta_seconds is not None
    # The operator's limit replaces the default.
    assert make(admission_max_wait_seconds=900.0).admission.max_wait(KIND, payload) == 900.0
    # A deadline shorter than the render itself sets no limit (nothing is refused).
    short = make(video_deadline_seconds=60.0, kie_create_limit="1/60")
    assert short.admission.max_wait(KIND, payload) is None
    short.grant(4, 1)
    assert short.submit_video(user_id=4, product=PRODUCT).eta_seconds


def test_stats_and_doctor_show_the_backlog(make: Callable[..., Client]) -> None:
    from worker.cli.stats_cmd import admission_figures
    from worker.doctor.backlog import backlog_checks

    # One account at one create a minute: about 3 creates fit before a 400 s deadline.
    client = make(kie_create_limit="1/60", video_deadline_seconds=400.0)
    (healthy,) = backlog_checks(client.settings, timeout=3.0)
    assert healthy.name == "video backlog" and healthy.ok and not healthy.warning
    setup = make(kie_create_limit="1/60", admission_max_wait_seconds=10**6)
    _waiting_users(setup, range(400, 406))
    figures = admission_figures(client.settings, client.db)["video"]
    assert figures["waiting"] == 6 and figures["provider"] == "kie"
    assert figures["accounts"] == [{"account": "acct", "keys": 2, "per_minute": 1.0}]
    assert figures["clear_seconds"] == pytest.approx(6 * 63.0, abs=1.0)
    assert figures["wait_seconds"] > figures["max_wait_seconds"]
    assert figures["creatable_before_deadline"] == pytest.approx(205 / 63, abs=0.1)
    assert figures["waits_last_hour"]["jobs"] == 0  # none passed yet
    (late,) = backlog_checks(client.settings, timeout=3.0)
    assert late.ok and late.warning and "would miss their deadline" in late.detail, late
