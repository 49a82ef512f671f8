"""The leader lease (worker/leader.py, migrations/0006) on the real database: one leader at a
time, renewal, takeover after expiry, resignation, and a leader that cannot renew stops acting
by its own clock."""

from __future__ import annotations

import time

import psycopg
import pytest

from worker.db import Database
from worker.leader import LeaderElector, current, holder_id, lease_seconds


def test_one_leader_renews_and_another_takes_over_only_after_expiry(db: Database) -> None:
    a = LeaderElector(db, ttl=1.0, holder="host-a:1:1:aa")
    b = LeaderElector(db, ttl=1.0, holder="host-b:2:1:bb")
    assert current(db) is None
    assert a.elect() and a.is_leader
    assert not b.elect() and not b.is_leader
    first = current(db)
    assert first is not None and first.holder == "host-a:1:1:aa" and first.live
    time.sleep(0.6)
    assert a.elect()  # renewed: the lease now runs 1 s from here
    time.sleep(0.6)
    assert not b.elect()  # 1.2 s after a's election, but only 0.6 s after its renewal
    renewed = current(db)
    assert renewed is not None and renewed.elected_at == first.elected_at
    assert renewed.expires_at > first.expires_at
    time.sleep(1.1)  # a stops renewing (it died): its lease expires
    assert not a.is_leader  # by its own clock, before anyone took over
    assert b.elect()
    taken = current(db)
    assert taken is not None and taken.holder == "host-b:2:1:bb"
    assert taken.elected_at > first.elected_at
    assert not a.elect()  # a comes back: the lease is b's


def test_resigning_hands_over_at_once(db: Database) -> None:
    a, b = LeaderElector(db, ttl=60.0), LeaderElector(db, ttl=60.0)
    assert a.holder != b.holder
    assert a.elect() and not b.elect()
    a.resign()
    assert not a.is_leader and b.elect()
    b.resign()
    b.resign()  # twice is harmless
    assert current(db) is None


def test_elections_by_name_are_independent(db: Database) -> None:
    a = LeaderElector(db, ttl=30.0, name="maintenance")
    b = LeaderElector(db, ttl=30.0, name="retention")
    assert a.elect() and b.elect()


def test_a_database_error_means_not_leading(db: Database) -> None:
    a = LeaderElector(db, ttl=30.0)
    assert a.elect()
    broken = Database("postgresql://postgres@127.0.0.1:1/nowhere", min_size=1, max_size=1)
    broken.pool.timeout = 1.0
    cut_off = LeaderElector(broken, ttl=30.0, holder=a.holder)
    cut_off._valid_until = a._valid_until  # the same process, its database gone
    broken.open(wait=False)
    try:
        assert not cut_off.elect() and not cut_off.is_leader
    finally:
        broken.close()


def test_bad_values_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="ttl"):
        LeaderElector(db, ttl=0)
    with pytest.raises(ValueError, match="name"):
        LeaderElector(db, ttl=5.0, name="Not A Name")
    with pytest.raises(ValueError, match="holder"):
        LeaderElector(db, ttl=5.0, holder="x" * 201)
    # The table refuses them too, whoever writes it.
    with pytest.raises(psycopg.errors.CheckViolation), db.connection() as conn:
        conn.execute(
            "INSERT INTO leaders (name, holder, expires_at) VALUES ('Bad Name', 'h', now() + '1s')"
        )
    assert current(db) is None


def test_lease_length_and_holder() -> None:
    assert lease_seconds(5.0) == 15.0 and lease_seconds(0.5) == 5.0
    host, pid, instance, nonce = holder_id(7).split(":")
    assert int(pid) > 0 and instance == "7" and len(nonce) == 6 and host
