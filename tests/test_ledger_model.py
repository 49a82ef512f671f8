"""A stateful property test: random grants, submits, captures, refunds, cancels, replays and
duplicate calls against a small Python model of the balances, with every ledger invariant
checked after every step."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import PRODUCT
from worker import ledger, lifecycle
from worker.client import Client, InsufficientCredits, InvalidRequest
from worker.db import Database
from worker.errors import ErrorClass, HoldAlreadyResolved, JobStateConflict

USERS = st.sampled_from([101, 102, 103])


@dataclass
class Account:
    available: int = 0
    held: int = 0
    spent: int = 0
    refunded: int = 0


@dataclass
class Model:
    accounts: dict[int, Account] = field(default_factory=dict)
    jobs: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (user, status)
    grants: dict[tuple[int, str], int] = field(default_factory=dict)
    submits: dict[tuple[int, str], tuple[int, list[int]]] = field(default_factory=dict)


def test_ledger_against_a_model(client: Client, db: Database) -> None:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            with db.transaction() as conn:  # each run starts from an empty ledger
                conn.execute(
                    "TRUNCATE job_events, notifications, transfers, jobs, requests RESTART IDENTITY CASCADE"
                )
                conn.execute("DELETE FROM accounts WHERE user_id IS NOT NULL")
                conn.execute(
                    "UPDATE accounts SET debits_pending = 0, debits_posted = 0, "
                    "credits_pending = 0, credits_posted = 0"
                )
            self.m = Model()

        def acct(self, user: int) -> Account:
            return self.m.accounts.setdefault(user, Account())

        @rule(user=USERS, amount=st.integers(1, 5), key=st.sampled_from([None, "a", "b"]))
        def grant(self, user: int, amount: int, key: str | None) -> None:
            if key is not None and self.m.grants.get((user, key), amount) != amount:
                with pytest.raises(InvalidRequest):
                    client.grant(user, amount, idempotency_key=key)
                return
            client.grant(user, amount, idempotency_key=key)
            if key is None or (user, key) not in self.m.grants:
                self.acct(user).available += amount
                if key:
                    self.m.grants[(user, key)] = amount

        @rule(user=USERS, count=st.sampled_from([1, 3, 5]), key=st.sampled_from([None, "s1", "s2"]))
        def submit(self, user: int, count: int, key: str | None) -> None:
            a = self.acct(user)
            if key is not None and (user, key) in self.m.submits:
                first_count, first_ids = self.m.submits[(user, key)]
                if first_count == count:
                    assert (
                        client.submit_video(
                            user_id=user, product=PRODUCT, count=count, idempotency_key=key
                        ).job_ids
                        == first_ids
                    )
                else:
                    with pytest.raises(Exception, match="different request"):
                        client.submit_video(
                            user_id=user, product=PRODUCT, count=count, idempotency_key=key
                        )
                return
            if count > a.available:
                with pytest.raises(InsufficientCredits):
                    client.submit_video(
                        user_id=user, product=PRODUCT, count=count, idempotency_key=key
                    )
                return
            res = client.submit_video(
                user_id=user, product=PRODUCT, count=count, idempotency_key=key
            )
            a.available -= count
            a.held += count
            for j in res.job_ids:
                self.m.jobs[j] = (user, "queued")
            if key is not None:
                self.m.submits[(user, key)] = (count, res.job_ids)

        def _queued(self) -> list[int]:
            return sorted(j for j, (_, s) in self.m.jobs.items() if s == "queued")

        @precondition(lambda self: self._queued())
        @rule(data=st.data(), success=st.booleans())
        def finish(self, data: st.DataObject, success: bool) -> None:
            job = data.draw(st.sampled_from(self._queued()))
            user, _ = self.m.jobs[job]
            with db.transaction() as conn:
                c = lifecycle.claim(conn, job, "photo", "model", 30)
                assert c is not None
                # A replayed or late message finds the job taken and does nothing.
                assert lifecycle.claim(conn, job, "photo", "late", 30) is None
                if success:
                    assert lifecycle.succeed(conn, c, result="r.mp4")
                else:
                    assert lifecycle.fail(
                        conn, c, error_class=ErrorClass.TEMPORARY, error="x", user_error="y"
                    )
                # A second outcome under the same claim is refused by the fence.
                assert not lifecycle.succeed(conn, c, result="again")
            a = self.acct(user)
            a.held -= 1
            if success:
                a.spent += 1
            else:
                a.refunded += 1
                a.available += 1
            self.m.jobs[job] = (user, "succeeded" if success else "failed")

        @precondition(lambda self: self._queued())
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            job = data.draw(st.sampled_from(self._queued()))
            user, _ = self.m.jobs[job]
            client.cancel(job)
            with pytest.raises(JobStateConflict):
                client.cancel(job)
            a = self.acct(user)
            a.held -= 1
            a.available += 1
            a.refunded += 1
            self.m.jobs[job] = (user, "cancelled")

        @precondition(lambda self: any(s != "queued" for _, s in self.m.jobs.values()))
        @rule(data=st.data())
        def replay_resolution(self, data: st.DataObject) -> None:
            done = sorted(j for j, (_, s) in self.m.jobs.items() if s != "queued")
            job = data.draw(st.sampled_from(done))
            _, status = self.m.jobs[job]
            with db.transaction() as conn:
                if status == "succeeded":
                    assert ledger.capture(conn, job) is False
                    with pytest.raises(HoldAlreadyResolved):
                        ledger.refund(conn, job)
                else:
                    assert ledger.refund(conn, job) is False
                    with pytest.raises(HoldAlreadyResolved):
                        ledger.capture(conn, job)

        @invariant()
        def balances_match_the_model(self) -> None:
            for user, a in self.m.accounts.items():
                b = client.balance(user)
                assert (b.available, b.held, b.spent, b.refunded) == (
                    a.available,
                    a.held,
                    a.spent,
                    a.refunded,
                )

        @invariant()
        def ledger_invariants_hold(self) -> None:
            with db.transaction() as conn:
                failed = [c for c in ledger.check(conn, replay_sample=20) if not c.ok]
            assert not failed, failed

    run_state_machine_as_test(
        LedgerMachine,
        settings=hsettings(
            max_examples=20,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
