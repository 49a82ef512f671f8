"""What the jobs table, the timeline, the ledger and the broker say about the system right now.

Data only: `worker jobs stats` prints it, `worker doctor` judges it, the metrics collector
exposes it. The queries are in :mod:`worker.sql.stats`; each is indexed or bounded by a window
(see there), so running this against a large production table is safe.

Windows ("last hour", "last day") are about jobs *created* in the window: their current status,
the error class they ended with, the credits they held, and how long their steps took.

Step durations come from the timeline: the time between consecutive events of a job, credited
to the step the later event ends (waiting in the queue, retries and backoff included). That is
the latency a user feels per step, across processes and restarts; the pure execution time of one
step in one process is the ``worker_step_duration_seconds`` histogram. Which events end which
step is the kind's knowledge (``JobKind.step_events``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from redis import Redis

from worker.db import Connection
from worker.errors import ErrorClass
from worker.kinds import JobKind, all_kinds
from worker.sql import stats as q

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
ERROR_CLASSES = tuple(str(c) for c in ErrorClass)

#: The windows of `worker jobs stats`, by JSON key.
WINDOWS: dict[str, float] = {"last_hour": 3600.0, "last_day": 86400.0}

#: A queued job due this long ago, or a running one whose lease expired, is stuck: no worker
#: picked it up and the maintenance loop (which re-sends after 30 s) has not fixed it.
STUCK_AFTER_SECONDS = 300.0

#: Above this many rows (planner estimate), all-time counts of finished jobs come from the
#: planner's statistics instead of a count over the whole table.
EXACT_COUNT_LIMIT = 1_000_000

#: Events written by the step runtime whose detail starts with "<CLASS> from <provider>".
CLASSIFIED_EVENTS = ("retry", "wait", "failed")
TERMINAL_EVENTS = ("succeeded", "failed", "cancelled")


# --- stuck jobs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stuck:
    """Jobs no worker is moving: queued and overdue, or running under an expired lease."""

    queued_overdue: int
    lease_expired: int
    oldest_overdue_seconds: float | None
    examples: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.queued_overdue + self.lease_expired

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "after_seconds": STUCK_AFTER_SECONDS}


def stuck_jobs(conn: Connection, *, after: float = STUCK_AFTER_SECONDS, examples: int = 5) -> Stuck:
    row = conn.execute(q.STUCK, {"grace": after, "examples": examples}).fetchone()
    assert row is not None
    oldest = row["oldest_overdue_seconds"]
    return Stuck(
        queued_overdue=int(row["queued_overdue"]),
        lease_expired=int(row["lease_expired"]),
        oldest_overdue_seconds=None if oldest is None else round(float(oldest), 1),
        examples=[int(i) for i in row["examples"]],
    )


# --- all time ---------------------------------------------------------------------------------


def active_counts(conn: Connection) -> dict[str, int]:
    """Queued and running jobs, exactly, through the partial indexes."""
    row = conn.execute(q.ACTIVE_COUNTS).fetchone()
    assert row is not None
    return {"queued": int(row["queued"]), "running": int(row["running"])}


def status_counts(
    conn: Connection, *, exact_limit: int = EXACT_COUNT_LIMIT
) -> tuple[dict[str, int], bool]:
    """Jobs by status over all time, and whether the finished ones are estimates.

    Queued and running are always exact (partial indexes). Finished jobs are counted exactly
    while the table is below ``exact_limit`` rows, else taken from the planner's statistics
    (``pg_stats`` after ANALYZE), which is free and good to a percent or so.
    """
    counts = dict.fromkeys(STATUSES, 0)
    estimate = conn.execute(q.STATUS_ESTIMATE).fetchone()
    rows = int(estimate["rows"]) if estimate and estimate["rows"] is not None else -1
    estimated = bool(rows >= exact_limit and estimate and estimate["vals"])
    if estimated and estimate is not None:
        for value, freq in zip(estimate["vals"], estimate["freqs"], strict=False):
            if value in counts:
                counts[value] = round(float(freq) * rows)
    else:
        for r in conn.execute(q.STATUS_EXACT).fetchall():
            counts[str(r["status"])] = int(r["n"])
    counts.update(active_counts(conn))
    return counts, estimated


def ledger_totals(conn: Connection, *, with_refunds: bool = True) -> dict[str, int]:
    """Credits held now, captured ever, and (a scan of the transfers) refunded ever."""
    row = conn.execute(q.LEDGER_COUNTERS).fetchone()
    totals = {
        "held": int(row["held"]) if row else 0,
        "captured": int(row["captured"]) if row else 0,
    }
    if with_refunds:
        refunded = conn.execute(q.REFUNDED_ALL_TIME).fetchone()
        assert refunded is not None
        totals["refunded"] = int(refunded["refunded"])
        totals["refunds"] = int(refunded["refunds"])
    return totals


# --- windows ----------------------------------------------------------------------------------


def step_end_events(kinds: Iterable[JobKind] | None = None) -> dict[str, dict[str, str]]:
    """Events that end a step, per kind, as each kind declares them (``JobKind.step_events``)."""
    found: dict[str, dict[str, str]] = {}
    for kind in all_kinds() if kinds is None else kinds:
        if kind.step_events:
            found[kind.name] = dict(kind.step_events)
    return found


def _rounded(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 3) if math.isfinite(value) else None


def _step_order(kinds: Mapping[str, JobKind]) -> Any:
    def key(row: Mapping[str, Any]) -> tuple[str, int, str]:
        kind = kinds.get(row["kind"])
        steps = kind.steps if kind else ()
        index = steps.index(row["step"]) if row["step"] in steps else len(steps)
        return (row["kind"], index, row["step"])

    return key


def window(
    conn: Connection,
    seconds: float,
    *,
    step_events: Mapping[str, Mapping[str, str]] | None = None,
    kinds: Mapping[str, JobKind] | None = None,
) -> dict[str, Any]:
    """Jobs created in the last ``seconds``: statuses, errors, credits and step durations."""
    kinds = {k.name: k for k in all_kinds()} if kinds is None else dict(kinds)
    events = step_end_events(kinds.values()) if step_events is None else step_events
    bound = conn.execute(q.WINDOW_BOUNDARY, {"seconds": seconds}).fetchone()
    assert bound is not None
    after = {"after_id": int(bound["after_id"])}

    by_status = dict.fromkeys(STATUSES, 0)
    for r in conn.execute(q.STATUS_IN_WINDOW, after).fetchall():
        by_status[str(r["status"])] = int(r["n"])

    by_error_class = {
        str(r["error_class"]): {"failed": int(r["failed"]), "active": int(r["active"])}
        for r in conn.execute(q.ERRORS_IN_WINDOW, after).fetchall()
    }
    by_error_class = {c: by_error_class[c] for c in ERROR_CLASSES if c in by_error_class}

    provider_errors = [
        {"provider": r["provider"], "error_class": r["error_class"], "count": int(r["n"])}
        for r in conn.execute(
            q.PROVIDER_ERRORS_IN_WINDOW, {**after, "events": list(CLASSIFIED_EVENTS)}
        ).fetchall()
    ]

    credits = conn.execute(q.CREDITS_IN_WINDOW, after).fetchone()
    assert credits is not None

    steps = _step_durations(conn, after, events, kinds)
    end_to_end = [
        {"kind": r["kind"], "jobs": int(r["jobs"]), **_percentiles(r)}
        for r in conn.execute(q.END_TO_END_IN_WINDOW, after).fetchall()
    ]
    return {
        "since": bound["since"],
        "seconds": seconds,
        "jobs": sum(by_status.values()),
        "by_status": by_status,
        "by_error_class": by_error_class,
        "provider_errors": provider_errors,
        "credits": {
            "held": int(credits["held"]),
            "captured": int(credits["captured"]),
            "refunded": int(credits["refunded"]),
            "refunds": int(credits["refunds"]),
        },
        "steps": steps,
        "end_to_end": end_to_end,
    }


def _percentiles(row: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        "p50_seconds": _rounded(row["p50"]),
        "p95_seconds": _rounded(row["p95"]),
        "max_seconds": _rounded(row["max"]),
    }


def _step_durations(
    conn: Connection,
    after: Mapping[str, int],
    events: Mapping[str, Mapping[str, str]],
    kinds: Mapping[str, JobKind],
) -> list[dict[str, Any]]:
    """How long each step of each kind took (the events that end a step, per kind)."""
    pairs = [(k, e, s) for k, m in events.items() for e, s in m.items()]
    step_rows = conn.execute(
        q.STEP_DURATIONS_IN_WINDOW,
        {
            **after,
            "map_kinds": [p[0] for p in pairs],
            "map_events": [p[1] for p in pairs],
            "map_steps": [p[2] for p in pairs],
            "terminal": list(TERMINAL_EVENTS),
        },
    ).fetchall()
    return sorted(
        (
            {"kind": r["kind"], "step": r["step"], "jobs": int(r["jobs"]), **_percentiles(r)}
            for r in step_rows
        ),
        key=_step_order(kinds),
    )


def spend(conn: Connection, seconds: float) -> list[dict[str, Any]]:
    """Provider spend of the jobs created in the last ``seconds``, by kind, tier and resource,
    next to the credits sold for them (see ``SPEND_IN_WINDOW``)."""
    bound = conn.execute(q.WINDOW_BOUNDARY, {"seconds": seconds}).fetchone()
    assert bound is not None
    rows = conn.execute(q.SPEND_IN_WINDOW, {"after_id": int(bound["after_id"])}).fetchall()
    return [
        {
            "kind": r["kind"],
            "tier": r["tier"],
            "resource": r["resource"],
            "unit": r["unit"],
            "paid": int(r["paid"]),
            "made": int(r["made"]),
            "spent": round(float(r["spent"]), 2),
            "sold": int(r["sold"]),
        }
        for r in rows
    ]


def collect(conn: Connection) -> dict[str, Any]:
    """The whole `worker jobs stats` document."""
    kinds = {k.name: k for k in all_kinds()}
    events = step_end_events(kinds.values())
    now = conn.execute(q.NOW).fetchone()
    assert now is not None
    statuses, estimated = status_counts(conn)
    return {
        "generated_at": now["now"],
        "windows": {
            name: window(conn, seconds, step_events=events, kinds=kinds)
            for name, seconds in WINDOWS.items()
        },
        "all_time": {
            "by_status": statuses,
            "estimated": estimated,
            "credits": ledger_totals(conn),
        },
        "stuck": stuck_jobs(conn).as_dict(),
        "spend": {name: spend(conn, seconds) for name, seconds in WINDOWS.items()},
    }


# --- the broker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDepth:
    """One Dramatiq queue in Redis (see dramatiq/brokers/redis/dispatch.lua for the layout).

    ``ready``: message ids waiting in the list ``{ns}:{queue}``. ``unacked``: fetched by a
    worker and not yet acknowledged (the ``.msgs`` hash holds ready and fetched messages).
    ``delayed``: messages of the delay queue ``{queue}.DQ`` (its hash, so also the ones a worker
    holds until their time comes). ``dead``: the dead-letter set ``{queue}.XQ``.
    """

    queue: str
    ready: int
    unacked: int
    delayed: int
    dead: int


def queue_names(kinds: Iterable[JobKind] | None = None) -> list[str]:
    """Every queue the workers consume: one per kind, and the notification outbox."""
    from worker.notifications import QUEUE as NOTIFY_QUEUE

    names = [k.queue for k in (all_kinds() if kinds is None else kinds)]
    return [*names, NOTIFY_QUEUE]


def queue_depths(redis: Redis, namespace: str, queues: Sequence[str]) -> list[QueueDepth]:
    """Sizes of ``queues`` in one round trip. ``namespace`` is ``REDIS_NAMESPACE``."""
    prefix = f"{namespace}:q:"
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        base = prefix + queue
        pipe.llen(base)
        pipe.hlen(base + ".msgs")
        pipe.hlen(base + ".DQ.msgs")
        pipe.zcard(base + ".XQ")
    values = [int(v) for v in pipe.execute()]
    depths = []
    for i, queue in enumerate(queues):
        ready, messages, delayed, dead = values[4 * i : 4 * i + 4]
        depths.append(QueueDepth(queue, ready, max(0, messages - ready), delayed, dead))
    return depths
