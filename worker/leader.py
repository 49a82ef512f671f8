"""Leader election by a lease row, River's design (migrations/0006).

One row per election in ``leaders``: who holds it and until when, on the database's clock.
:meth:`LeaderElector.elect` is one statement on a pooled connection that takes the lease if it
is free or expired, or renews it if this process holds it; the caller runs it at every tick, so
a living leader keeps the lease and a dead one (killed, frozen, cut off from the database) loses
it ``ttl`` seconds after its last renewal, when the next process to try takes it over.
:meth:`LeaderElector.resign` deletes the row on a clean stop, so a successor needs no wait.

Unlike a session-level advisory lock this holds no connection of its own and survives a
transaction-pooling PgBouncer. A leader that cannot renew (the database is down) stops acting
at the lease's end, counted on its own monotonic clock from *before* its last renewal was sent,
so it stops no later than others may take over. Two leaders can still overlap if a leader is
paused mid-tick for longer than the lease; the maintenance actions are fenced statements that
tolerate that, the lease only keeps them from being done N times over.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg

from worker.db import Database
from worker.sql import leader as q

log = logging.getLogger(__name__)

#: The election the maintenance loop runs.
MAINTENANCE = "maintenance"
#: What the table's CHECK constraints accept (migrations/0006).
_NAME = re.compile(r"^[a-z0-9_.-]{1,64}$")
_HOLDER_MAX = 200


def holder_id(instance: int | str = 0) -> str:
    """``host:pid:instance:nonce``: the nonce tells a restarted process with a reused pid apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{instance}:{secrets.token_hex(3)}"


def lease_seconds(interval: float) -> float:
    """The lease for a leader renewing every ``interval`` seconds: three ticks, at least 5 s,
    so one slow tick or a short stall does not hand the lease over."""
    return max(3.0 * interval, 5.0)


@dataclass(frozen=True)
class Leader:
    """Who holds an election's lease (see :func:`current`)."""

    holder: str
    elected_at: datetime
    renewed_at: datetime
    expires_at: datetime
    live: bool


class LeaderElector:
    """Takes, keeps and gives up the lease of election ``name`` for this process."""

    def __init__(
        self, db: Database, *, ttl: float, name: str = MAINTENANCE, holder: str | None = None
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"a lease must last some time, got ttl={ttl!r}")
        if not _NAME.match(name):
            raise ValueError(f"an election's name is 1-64 of a-z 0-9 _ . -, got {name!r}")
        if holder is not None and not 0 < len(holder) <= _HOLDER_MAX:
            raise ValueError(f"a holder is 1-{_HOLDER_MAX} characters, got {len(holder)}")
        self.db = db
        self.name = name
        self.ttl = ttl
        self.holder = holder or holder_id()
        #: Monotonic time until which this process may act as the leader (0: not the leader).
        self._valid_until = 0.0

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    def elect(self) -> bool:
        """Take or renew the lease; True while this process leads. The database being out of
        reach counts as not leading (after logging it), not as an exception."""
        sent = time.monotonic()
        try:
            row = self.db.fetchone(
                q.ELECT, {"name": self.name, "holder": self.holder, "ttl": self.ttl}
            )
        except psycopg.OperationalError as exc:
            if self.is_leader:
                log.warning("leader %s: cannot renew the lease (%s)", self.name, exc)
            self._valid_until = 0.0
            return False
        if row is None:
            if self._valid_until:
                log.warning("leader %s: lost the lease to another process", self.name)
            self._valid_until = 0.0
            return False
        if row["new"] or not self._valid_until:
            before = row["previous"]
            log.info(
                "%s leader: this process (%s)%s",
                self.name,
                self.holder,
                f", taking over from {before}" if before and before != self.holder else "",
            )
        self._valid_until = sent + self.ttl
        return True

    def resign(self) -> None:
        """Give the lease up now (best effort: otherwise it expires by itself)."""
        was = self._valid_until
        self._valid_until = 0.0
        if not was:
            return
        try:
            with self.db.connection() as conn:
                conn.execute(q.RESIGN, {"name": self.name, "holder": self.holder})
        except psycopg.OperationalError as exc:
            log.warning("leader %s: could not resign (%s); the lease will expire", self.name, exc)


def current(db: Database, name: str = MAINTENANCE) -> Leader | None:
    """Who holds election ``name``'s lease, if anyone ever did."""
    row = db.fetchone(q.CURRENT, {"name": name})
    if row is None:
        return None
    return Leader(
        holder=str(row["holder"]),
        elected_at=row["elected_at"],
        renewed_at=row["renewed_at"],
        expires_at=row["expires_at"],
        live=bool(row["live"]),
    )
