"""The ledger end to end on real PostgreSQL, including every refusal."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import PRODUCT
from worker import ledger, lifecycle
from worker.client import Client
from worker.db import Database
from worker.errors import ErrorClass, HoldAlreadyResolved, InsufficientCredits, LedgerError


def _check_ok(db: Database) -> None:
    with db.transaction() as conn:
        failed = [c for c in ledger.check(conn) if not c.ok]
    assert not failed, failed


def _claim(db: Database, job_id: int) -> lifecycle.Claim:
    with db.transaction() as conn:
        c = lifecycle.claim(conn, job_id, "photo", "test-owner", 30)
    assert c is not None
    return c


def test_grant_hold_capture_refund_scenario(client: Client, db: Database) -> None:
    assert client.grant(1, 5).available == 5
    res = client.submit_video(user_id=1, chat_id=1, product=PRODUCT, count=3)
    assert (res.credits_held, res.available) == (3, 2)
    assert client.balance(1).as_dict() == {
        "user_id": 1,
        "available": 2,
        "held": 3,
        "spent": 0,
        "refunded": 0,
    }

    a, b, c = res.job_ids
    ca, cb = _claim(db, a), _claim(db, b)
    with db.transaction() as conn:
        assert lifecycle.succeed(conn, ca, result="/tmp/a.mp4")
        assert lifecycle.fail(
            conn, cb, error_class=ErrorClass.USER_ERROR, error="policy", user_error="no"
        )
    client.cancel(c)
    assert client.balance(1).as_dict() == {
        "user_id": 1,
        "available": 4,
        "held": 0,
        "spent": 1,
        "refunded": 2,
    }
    assert [client.job(j)["credits"] for j in (a, b, c)] == ["captured", "refunded", "refunded"]
    _check_ok(db)


def test_replays_change_nothing(client: Client, db: Database) -> None:
    client.grant(2, 3, idempotency_key="g1")
    client.grant(2, 3, idempotency_key="g1")
    assert client.balance(2).available == 3
    (job,) = client.submit_video(user_id=2, product=PRODUCT).job_ids
    with db.transaction() as conn:
        assert ledger.capture(conn, job) is True
        assert ledger.capture(conn, job) is False  # same transfer id: a no-op
        assert ledger.hold(conn, job_id=job, user_id=2, amount=1) is False
    assert client.balance(2).as_dict()["spent"] == 1


def test_a_hold_resolves_exactly_once(client: Client, db: Database) -> None:
    client.grant(3, 1)
    (job,) = client.submit_video(user_id=3, product=PRODUCT).job_ids
    with db.transaction() as conn:
        ledger.capture(conn, job)
        with pytest.raises(HoldAlreadyResolved):
            ledger.refund(conn, job)
        # the transaction is still usable after the refusal (savepoint)
        assert ledger.hold_state(conn, job) == "captured"


def test_overdraft_is_refused_by_the_database(client: Client, db: Database) -> None:
    client.grant(4, 1)
    with pytest.raises(InsufficientCredits) as info:
        client.submit_video(user_id=4, product=PRODUCT, count=3)
    assert (info.value.needed, info.value.available) == (3, 1)
    # Even bypassing the client's check, the CHECK constraint refuses the transfer.
    with db.transaction() as conn:
        account = ledger.user_account(conn, 4)
        assert account is not None
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(
                "INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, reason)"
                " VALUES (gen_random_uuid(), 'single', %s, 2, 5, 'theft')",
                (account["id"],),
            )
    assert client.balance(4).available == 1
    _check_ok(db)


def test_transfers_and_events_are_immutable(client: Client, db: Database) -> None:
    client.grant(5, 2)
    (job,) = client.submit_video(user_id=5, product=PRODUCT).job_ids
    for statement in (
        "UPDATE transfers SET amount = 100",
        "DELETE FROM transfers",
        "UPDATE job_events SET detail = 'x'",
        "DELETE FROM job_events",
    ):
        with (
            pytest.raises(psycopg.errors.RaiseException, match="immutable"),
            db.transaction() as conn,
        ):
            conn.execute(statement)
    assert client.balance(5).as_dict()["held"] == 1
    assert client.job(job)["events"][0]["event"] == "submitted"


def test_resolution_must_match_its_hold(client: Client, db: Database) -> None:
    client.grant(6, 2)
    (job,) = client.submit_video(user_id=6, product=PRODUCT).job_ids
    with db.transaction() as conn:
        hold = conn.execute("SELECT * FROM transfers WHERE job_id = %s", (job,)).fetchone()
        assert hold is not None
        with (
            pytest.raises(psycopg.errors.RaiseException, match="does not match"),
            conn.transaction(),
        ):
            conn.execute(
                "INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount,"
                " pending_id, reason) VALUES (gen_random_uuid(), 'post', %s, %s, 2, %s, 'x')",
                (hold["debit_account_id"], hold["credit_account_id"], hold["id"]),
            )


def test_grant_refuses_non_positive(client: Client, db: Database) -> None:
    with db.transaction() as conn, pytest.raises(LedgerError):
        ledger.grant(conn, 7, 0)


def test_check_finds_a_job_whose_hold_disagrees(client: Client, db: Database) -> None:
    client.grant(8, 1)
    (job,) = client.submit_video(user_id=8, product=PRODUCT).job_ids
    _check_ok(db)
    # Written by hand, the way a bug or an operator would: status moved, money did not.
    with db.transaction() as conn:
        conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = %s", (job,)
        )
    with db.transaction() as conn:
        checks = {c.name: c for c in ledger.check(conn)}
    bad = checks["job status agrees with its hold"]
    assert not bad.ok and f"job {job} is succeeded but its hold is open" in bad.detail
    assert all(c.ok for name, c in checks.items() if name != bad.name)


def test_check_finds_counter_drift(client: Client, db: Database) -> None:
    client.grant(9, 4)
    with db.transaction() as conn:  # a balance "fixed" by hand: exactly what must never happen
        conn.execute("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE user_id = 9")
    with db.transaction() as conn:
        checks = {c.name: c for c in ledger.check(conn)}
    assert not checks["account counters equal a replay of the transfers"].ok
    assert not checks["debits equal credits"].ok


def test_transfer_ids_agree_between_python_and_sql(db: Database) -> None:
    for job_id in (1, 42, 2**40 + 7):
        for kind in (ledger.HOLD, ledger.CAPTURE, ledger.REFUND):
            row = db.fetchone("SELECT job_transfer_id(%s, %s) AS id", (job_id, kind))
            assert row is not None and row["id"] == ledger.job_transfer_id(job_id, kind)
    assert (
        len({ledger.hold_id(7), ledger.capture_id(7), ledger.refund_id(7), ledger.hold_id(8)}) == 4
    )


def test_finishing_a_job_moves_its_hold_once_in_one_statement(client: Client, db: Database) -> None:
    """end_job (migrations/0005): the fenced update, the capture or refund, the event and the
    outbox message commit together; a refusal by the ledger rolls all of them back."""
    client.grant(4, 3)
    a, b, c = client.submit_video(user_id=4, chat_id=44, product=PRODUCT, count=3).job_ids
    ca, cb, cc = _claim(db, a), _claim(db, b), _claim(db, c)
    with db.connection() as conn:
        assert lifecycle.succeed(conn, ca, result="a.mp4", event="succeeded", detail="ok")
        assert not lifecycle.succeed(conn, ca, result="again")  # the claim is used up
        assert lifecycle.fail(
            conn,
            cb,
            error_class=ErrorClass.BILLING,
            error="out of money",
            user_error="not available",
            event="failed",
            detail="refunded",
            notify_kind="failure",
            notify_text="Sorry",
        )
        events = conn.execute(
            "SELECT job_id, event, detail FROM job_events WHERE job_id IN (%s, %s)"
            " AND event IN ('succeeded', 'failed') ORDER BY job_id",
            (a, b),
        ).fetchall()
        note = conn.execute("SELECT * FROM notifications WHERE job_id = %s", (b,)).fetchone()
    assert [(e["job_id"], e["event"], e["detail"]) for e in events] == [
        (a, "succeeded", "ok"),
        (b, "failed", "refunded"),
    ]
    assert note is not None
    assert (note["kind"], note["chat_id"], note["status"], note["outbox"], note["text"]) == (
        "failure",
        44,
        "pending",
        True,
        "Sorry",
    )

    # c's hold was already refunded behind the fence's back: capturing it must change nothing.
    with db.transaction() as conn:
        ledger.refund(conn, c)
    with db.connection() as conn, pytest.raises(HoldAlreadyResolved):
        lifecycle.succeed(conn, cc, result="c.mp4", event="succeeded")
    row = db.fetchone("SELECT status, result FROM jobs WHERE id = %s", (c,))
    assert row == {"status": "running", "result": None}
    assert [client.job(j)["credits"] for j in (a, b, c)] == ["captured", "refunded", "refunded"]
    # Failing it instead agrees with the refund, which is replayed as a no-op.
    with db.connection() as conn:
        assert lifecycle.fail(
            conn, cc, error_class=ErrorClass.INTERNAL, error="x", user_error="y", event="failed"
        )
    assert client.balance(4).as_dict() == {
        "user_id": 4,
        "available": 2,
        "held": 0,
        "spent": 1,
        "refunded": 2,
    }
    _check_ok(db)


def test_end_job_refuses_a_status_it_does_not_know(db: Database, client: Client) -> None:
    client.grant(5, 1)
    (job,) = client.submit_video(user_id=5, product=PRODUCT).job_ids
    c = _claim(db, job)
    with db.connection() as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute(
            "SELECT end_job(%s, %s, false, 'queued', '{}', null, null, null, null, null, null,"
            " '', '{}', null, '')",
            (job, c.token),
        )
    assert db.fetchone("SELECT status FROM jobs WHERE id = %s", (job,)) == {"status": "running"}
