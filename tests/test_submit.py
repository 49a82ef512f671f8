"""Transactional submit: validation, idempotency, concurrency, and a broker that is down."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import PRODUCT
from worker import ledger
from worker.client import AsyncClient, Client, InsufficientCredits, InvalidRequest
from worker.config import Settings, load_settings
from worker.db import Database
from worker.errors import JobStateConflict, RequestRefused, UnknownJob
from worker.kinds import UnknownKind


def _counts(db: Database) -> tuple[int, ...]:
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM jobs) j, (SELECT count(*) FROM requests) r,"
        " (SELECT count(*) FROM transfers) t, (SELECT count(*) FROM job_events) e"
    )
    assert row is not None
    return tuple(row.values())


def test_submit_commits_jobs_holds_and_events(client: Client, db: Database) -> None:
    client.grant(10, 5)
    res = client.submit_video(
        user_id=10, chat_id=11, product={**PRODUCT, "description": " Glossy. "}, count=3
    )
    assert len(res.job_ids) == 3 and res.credits_held == 3 and res.available == 2
    jobs = [client.job(j) for j in res.job_ids]
    assert {j["request_id"] for j in jobs} == {res.request_id}
    for j in jobs:
        assert (j["status"], j["step"], j["credits"], j["chat_id"]) == (
            "queued",
            "photo",  # the video kind's first step (a no-op for a link, chained into prompt)
            "held",
            11,
        )
        assert j["payload"]["description"] == "Glossy."
        assert [e["event"] for e in j["events"]] == ["submitted"]


def test_group_chats_are_accepted_and_a_chat_id_that_cannot_exist_is_refused(
    client: Client, db: Database
) -> None:
    client.grant(13, 5)
    for chat in (-4012345678, -1001234567890):  # a group, a supergroup
        (job,) = client.submit_video(user_id=13, chat_id=chat, product=PRODUCT).job_ids
        assert client.job(job)["chat_id"] == chat
    before = _counts(db)
    for bad in (0, True, 2**63, -(2**63), "-1001234567890", 1.5):
        with pytest.raises(InvalidRequest) as info:
            client.submit_video(user_id=13, chat_id=bad, product=PRODUCT)
        assert info.value.field == "chat_id"
    assert _counts(db) == before


def test_same_key_same_request_returns_first_result(client: Client, db: Database) -> None:
    client.grant(12, 5)
    first = client.submit_video(user_id=12, product=PRODUCT, count=3, idempotency_key="tg-1")
    again = client.submit_video(user_id=12, product=PRODUCT, count=3, idempotency_key="tg-1")
    assert again.replayed and not first.replayed
    assert (again.job_ids, again.request_id, again.credits_held, again.available) == (
        first.job_ids,
        first.request_id,
        first.credits_held,
        first.available,
    )
    assert client.balance(12).available == 2  # charged once


def test_same_key_other_request_is_refused_and_changes_nothing(
    client: Client, db: Database
) -> None:
    client.grant(13, 5)
    client.submit_video(user_id=13, product=PRODUCT, idempotency_key="k")
    before = _counts(db)
    with pytest.raises(InvalidRequest) as info:
        client.submit_video(
            user_id=13, product={**PRODUCT, "title": "Blue mug"}, idempotency_key="k"
        )
    assert info.value.field == "idempotency_key"
    with pytest.raises(InvalidRequest):
        client.submit_video(user_id=13, product=PRODUCT, count=3, idempotency_key="k")
    assert _counts(db) == before and client.balance(13).available == 4


def test_keys_are_per_user(client: Client) -> None:
    client.grant(14, 1)
    client.grant(15, 1)
    a = client.submit_video(user_id=14, product=PRODUCT, idempotency_key="same")
    b = client.submit_video(user_id=15, product=PRODUCT, idempotency_key="same")
    assert a.job_ids != b.job_ids


def test_concurrent_same_key_charges_once(client: Client) -> None:
    client.grant(16, 10)
    results: list[Any] = []
    barrier = threading.Barrier(10)

    def go() -> None:
        barrier.wait()
        results.append(client.submit_video(user_id=16, product=PRODUCT, idempotency_key="race"))

    threads = [threading.Thread(target=go) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({tuple(r.job_ids) for r in results}) == 1
    assert client.balance(16).available == 9


def test_twenty_threads_against_seven_credits(client: Client, db: Database) -> None:
    client.grant(20, 7)
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def go() -> None:
        barrier.wait()
        try:
            client.submit_video(user_id=20, product=PRODUCT)
            outcomes.append("ok")
        except InsufficientCredits:
            outcomes.append("refused")

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 7 and outcomes.count("refused") == 13
    assert client.balance(20).as_dict() == {
        "user_id": 20,
        "available": 0,
        "held": 7,
        "spent": 0,
        "refunded": 0,
    }
    with db.transaction() as conn:
        assert all(c.ok for c in ledger.check(conn))


def _process_submitter(database_url: str, namespace: str, n: int, queue: Any) -> None:
    s = load_settings(database_url=database_url, redis_namespace=namespace, _env_file=None)
    with Client(s) as c:
        ok = 0
        for _ in range(n):
            try:
                c.submit_video(user_id=21, product=PRODUCT)
                ok += 1
            except InsufficientCredits:
                pass
        queue.put(ok)


def test_two_processes_against_seven_credits(
    client: Client, settings: Settings, db: Database
) -> None:
    client.grant(21, 7)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_process_submitter,
            args=(settings.database_url, settings.redis_namespace, 10, queue),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert queue.get() + queue.get() == 7
    assert client.balance(21).available == 0
    with db.transaction() as conn:
        assert all(c.ok for c in ledger.check(conn))


def test_redis_unreachable_submit_still_commits(settings: Settings, db: Database) -> None:
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with Client(down, db=db) as c:
        c.grant(30, 2)
        res = c.submit_video(user_id=30, product=PRODUCT)
        res2 = c.submit_video(user_id=30, product=PRODUCT)  # circuit open: no wait at all
        assert [c.job(j)["status"] for j in res.job_ids + res2.job_ids] == ["queued", "queued"]
        assert [j["id"] for j in c.jobs(status="queued", user_id=30)] == res2.job_ids + res.job_ids


def test_unknown_user_and_unknown_job_are_typed_refusals(client: Client, db: Database) -> None:
    before = _counts(db)
    with pytest.raises(InsufficientCredits) as info:
        client.submit_video(user_id=999, product=PRODUCT)
    assert (info.value.needed, info.value.available) == (1, 0)
    with pytest.raises(UnknownJob):
        client.job(424242)
    with pytest.raises(UnknownJob):
        client.clone(424242)
    assert _counts(db) == before


def test_clone_and_retry_charge_again(client: Client, db: Database) -> None:
    client.grant(31, 3)
    (job,) = client.submit_video(user_id=31, product=PRODUCT).job_ids
    clone = client.clone(job)
    assert client.job(clone.job_ids[0])["cloned_from"] == job
    assert client.balance(31).available == 1
    with pytest.raises(JobStateConflict):
        client.retry(job)  # still queued
    client.cancel(job)
    with pytest.raises(JobStateConflict):
        client.cancel(job)
    retried = client.retry(job)
    assert client.retry(job).job_ids == retried.job_ids  # a second retry is the same retry
    assert client.balance(31).as_dict() == {
        "user_id": 31,
        "available": 1,
        "held": 2,
        "spent": 0,
        "refunded": 1,
    }


def test_the_named_submits_are_the_generic_submit_of_their_kind(
    client: Client, db: Database
) -> None:
    """``submit_video`` is ``submit("video", ...)``: the kind validates the request and its
    counts, so the same request under the same key is one request, whichever name made it."""
    client.grant(32, 5)
    first = client.submit(
        "video", user_id=32, chat_id=None, request=PRODUCT, count=3, idempotency_key="generic-1"
    )
    again = client.submit_video(user_id=32, product=PRODUCT, count=3, idempotency_key="generic-1")
    assert again.replayed and again.job_ids == first.job_ids
    twin = asyncio.run(
        AsyncClient(client).submit(
            "video", user_id=32, chat_id=32, request=PRODUCT, count=3, idempotency_key="generic-1"
        )
    )
    assert twin.replayed and twin.job_ids == first.job_ids
    before = _counts(db)
    with pytest.raises(InvalidRequest) as info:  # the video kind sells 1, 3 or 5
        client.submit("video", user_id=32, chat_id=None, request=PRODUCT, count=2)
    assert info.value.field == "count"
    with pytest.raises(UnknownKind):
        client.submit("no_such_kind", user_id=32, chat_id=None, request={})
    assert _counts(db) == before


# --- bad input: a typed error every time, and no row written ----------------------------------

_non_str = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=3),
    st.binary(max_size=10),
)
_junk = st.one_of(_non_str, st.text(max_size=30))
_bad_urls = st.one_of(
    st.sampled_from(
        [
            "ftp://x.test/a.jpg",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://",
            "//x.test/a.jpg",
            "https:// spaces.test/x",
            "x" * 3000,
            "",
        ]
    ),
    st.text(max_size=40).filter(
        lambda s: not s.strip().lower().startswith(("http://", "https://"))
    ),
)
_bad_products = st.one_of(
    _junk,
    st.just('{"title": "Mug", "image_url": "https://x.test/a.jpg"}'),  # JSON as a string
    st.fixed_dictionaries(
        {
            "title": st.one_of(
                _non_str, st.just(""), st.just("   "), st.text(min_size=201, max_size=300)
            ),
            "image_url": st.just(PRODUCT["image_url"]),
        }
    ),
    st.fixed_dictionaries({"title": st.just("Mug"), "image_url": _bad_urls}),
    st.fixed_dictionaries(
        {
            "title": st.just("Mug"),
            "image_url": st.just(PRODUCT["image_url"]),
            "description": st.one_of(st.integers(), st.text(min_size=2001, max_size=2100)),
        }
    ),
    st.fixed_dictionaries(
        {
            "title": st.just("Mug"),
            "image_url": st.just(PRODUCT["image_url"]),
            "price": st.integers(),
        }
    ),
    st.fixed_dictionaries({"image_url": st.just(PRODUCT["image_url"])}),
)


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(product=_bad_products)
def test_malformed_products_are_refused(client: Client, db: Database, product: Any) -> None:
    client.grant(40, 100, idempotency_key="seed")
    before = _counts(db)
    with pytest.raises(InvalidRequest) as info:
        client.submit_video(user_id=40, product=product)
    assert info.value.field.startswith("product")
    assert _counts(db) == before


@hsettings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user_id=st.one_of(_junk, st.integers(max_value=0), st.integers(min_value=2**63)),
    count=st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=3)),
    key=st.one_of(st.none(), st.just(""), st.text(min_size=256, max_size=300), st.just("a\x00b")),
)
def test_bad_ids_counts_and_keys_are_refused(
    client: Client, db: Database, user_id: Any, count: Any, key: Any
) -> None:
    client.grant(41, 100, idempotency_key="seed")
    before = _counts(db)
    good_user = isinstance(user_id, int) and not isinstance(user_id, bool) and 0 < user_id < 2**63
    good_count = isinstance(count, int) and not isinstance(count, bool) and count in (1, 3, 5)
    good_key = key is None
    if good_user and good_count and good_key:
        return
    with pytest.raises(RequestRefused):
        client.submit_video(
            user_id=user_id if not good_user else 41,
            product=PRODUCT,
            count=count,
            idempotency_key=key,
        )
    assert _counts(db) == before
