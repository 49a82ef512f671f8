"""What each dashboard page reads, as plain data: filters parsed from a URL, then the statements
of :mod:`worker.sql.dashboard` (and of :mod:`worker.stats` and :mod:`worker.client`, where the CLI
already reads the same thing).

Every function takes an open connection and runs a few bounded statements; the views call them
in a worker thread (psycopg is synchronous here, like the rest of the framework).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from worker import ledger, stats
from worker import validation as v
from worker.client import job_view
from worker.db import Connection
from worker.errors import InvalidRequest, UnknownJob
from worker.sql import dashboard as q
from worker.sql import jobs as jobs_q
from worker.sql import stats as stats_q

PAGE_SIZE = 50
#: A bulk action touches at most this many jobs; narrow the filter for more.
BULK_MAX = 500
#: The overview's charts: the last day in hourly bars, the last hour in 2-minute bars.
CHARTS = {"day": (86_400, 3_600), "hour": (3_600, 120)}


# --- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """The jobs list's filters, all of them in the URL (a link is the whole query)."""

    status: str | None = None
    kind: str | None = None
    user_id: int | None = None
    chat_id: int | None = None
    error_class: str | None = None
    model: str | None = None
    tier: str | None = None
    key_name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    #: URL parameter of each field.
    PARAMS: ClassVar[dict[str, str]] = {
        "status": "status",
        "kind": "kind",
        "user_id": "user",
        "chat_id": "chat",
        "error_class": "error_class",
        "model": "model",
        "tier": "tier",
        "key_name": "key",
        "created_from": "from",
        "created_to": "to",
    }

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> JobFilter:
        """Parse URL parameters; a bad value raises :class:`InvalidRequest` naming it."""
        values: dict[str, Any] = {}
        for name, param in cls.PARAMS.items():
            raw = (query.get(param) or "").strip()
            if not raw:
                continue
            if len(raw) > 200:
                raise InvalidRequest(param, "is too long")
            if name == "status":
                if raw not in stats.STATUSES:
                    raise InvalidRequest(param, f"must be one of {', '.join(stats.STATUSES)}")
                values[name] = raw
            elif name == "error_class":
                if raw not in stats.ERROR_CLASSES:
                    raise InvalidRequest(param, f"must be one of {', '.join(stats.ERROR_CLASSES)}")
                values[name] = raw
            elif name == "user_id":
                values[name] = v.positive_id(param, _int(param, raw))
            elif name == "chat_id":
                values[name] = v.chat_id(param, _int(param, raw))
            elif name in ("created_from", "created_to"):
                values[name] = _time(param, raw)
            else:
                if any(ord(c) < 32 for c in raw):
                    raise InvalidRequest(param, "must not hold control characters")
                values[name] = raw
        return cls(**values)

    def params(self) -> dict[str, str]:
        """The URL parameters of the filters that are set."""
        out: dict[str, str] = {}
        for name, param in self.PARAMS.items():
            value = getattr(self, name)
            if value is None:
                continue
            out[param] = (
                value.strftime("%Y-%m-%dT%H:%M") if isinstance(value, datetime) else str(value)
            )
        return out

    def query_string(self, **extra: Any) -> str:
        params = {**self.params(), **{k: str(x) for k, x in extra.items() if x is not None}}
        return urlencode(params)

    def sql_params(self, conn: Connection) -> dict[str, Any]:
        """Statement parameters, the time range turned into an id range (``min_id``/``max_id``)."""
        params = {f.name: getattr(self, f.name) for f in fields(self)}
        del params["created_from"], params["created_to"]
        params["min_id"] = params["max_id"] = None
        if self.created_from is not None or self.created_to is not None:
            row = conn.execute(
                q.ID_RANGE,
                {
                    "created_from": self.created_from or datetime(1970, 1, 1, tzinfo=UTC),
                    "created_to": self.created_to or datetime(9999, 1, 1, tzinfo=UTC),
                },
            ).fetchone()
            assert row is not None
            # An empty range: an impossible id interval, so the page is empty.
            params["min_id"] = row["first_id"] if row["first_id"] is not None else 1
            params["max_id"] = row["last_id"] if row["last_id"] is not None else 0
        return params

    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


def _int(param: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(param, "must be a whole number") from None


def _time(param: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(param, "must be a time such as 2026-12-05T10:30 (UTC)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def page_cursor(raw: str | None) -> int | None:
    """The ``before`` keyset parameter: list jobs with a smaller id."""
    if raw is None or raw == "":
        return None
    return v.positive_id("before", _int("before", raw))


# --- jobs list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPage:
    jobs: list[dict[str, Any]]
    next_before: int | None  # the keyset of the next (older) page, None on the last


def job_page(
    conn: Connection, flt: JobFilter, before: int | None, limit: int = PAGE_SIZE
) -> JobPage:
    params = {**flt.sql_params(conn), "before": before, "limit": limit + 1}
    rows = conn.execute(q.JOB_PAGE, params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(rows, rows[-1]["id"] if more and rows else None)


# --- one job ------------------------------------------------------------------------------------


def job_detail(conn: Connection, job_id: int) -> dict[str, Any]:
    """The `worker jobs show` view (:func:`worker.client.job_view`) plus transfers, messages,
    retries made of it and the stored file's name."""
    v.positive_id("job_id", job_id)
    row = conn.execute(jobs_q.JOB, {"id": job_id}).fetchone()
    if row is None:
        raise UnknownJob(job_id)
    events = conn.execute(jobs_q.EVENTS, {"id": job_id}).fetchall()
    view = job_view(row, events)
    view["state"] = row["state"]
    view["transfers"] = conn.execute(q.JOB_TRANSFERS, {"id": job_id}).fetchall()
    view["notifications"] = conn.execute(q.JOB_NOTIFICATIONS, {"id": job_id}).fetchall()
    view["clones"] = conn.execute(q.JOB_CLONES, {"id": job_id}).fetchall()
    return view


def job_pulse(conn: Connection, job_id: int) -> str | None:
    """A short string that changes whenever the job's page would."""
    row = conn.execute(q.JOB_PULSE, {"id": job_id}).fetchone()
    if row is None:
        return None
    return f"{row['status']}:{row['updated_at'].timestamp()}:{row['last_event']}"


def operator_event(conn: Connection, job_id: int, event: str, operator: str, detail: str) -> None:
    """Put an operator's action on the job's timeline, naming them."""
    from psycopg.types.json import Jsonb

    conn.execute(
        q.OPERATOR_EVENT,
        {
            "job_id": job_id,
            "event": event,
            "detail": f"{detail} (by {operator}, dashboard)",
            "data": Jsonb({"operator": operator, "via": "dashboard"}),
        },
    )


# --- bulk ---------------------------------------------------------------------------------------

#: Which jobs each bulk action applies to.
BULK_STATUSES = {"retry": ("failed", "cancelled"), "cancel": ("queued",)}


@dataclass(frozen=True)
class BulkMatch:
    action: str
    job_ids: list[int]
    credits: int
    too_many: bool

    @property
    def count(self) -> int:
        return len(self.job_ids)

    @property
    def max_id(self) -> int | None:
        return max(self.job_ids) if self.job_ids else None


def bulk_match(
    conn: Connection, flt: JobFilter, action: str, *, max_id: int | None = None
) -> BulkMatch:
    """The jobs ``action`` would touch (at most :data:`BULK_MAX`) and the credits involved:
    held again for a retry, refunded by a cancel. ``max_id`` pins the set a confirmation saw."""
    if action not in BULK_STATUSES:
        raise InvalidRequest("action", "must be retry or cancel")
    params = flt.sql_params(conn)
    if max_id is not None:
        params["max_id"] = max_id if params["max_id"] is None else min(params["max_id"], max_id)
    params.update(statuses=list(BULK_STATUSES[action]), limit=BULK_MAX + 1)
    rows = conn.execute(q.BULK_MATCH, params).fetchall()
    too_many = len(rows) > BULK_MAX
    rows = rows[:BULK_MAX]
    return BulkMatch(
        action, [int(r["id"]) for r in rows], sum(int(r["price"]) for r in rows), too_many
    )


# --- users ---------------------------------------------------------------------------------------


def user_detail(conn: Connection, user_id: int, *, transfers: int = 100) -> dict[str, Any]:
    v.positive_id("user_id", user_id)
    balance = ledger.balance(conn, user_id)
    by_status = {str(r["status"]): r for r in conn.execute(q.USER_STATUS, {"user_id": user_id})}
    rows = conn.execute(q.USER_TRANSFERS, {"user_id": user_id, "limit": transfers}).fetchall()
    return {
        "user_id": user_id,
        "balance": balance.as_dict(),
        "by_status": {
            s: {"jobs": int(by_status[s]["n"]), "credits": int(by_status[s]["credits"])}
            for s in stats.STATUSES
            if s in by_status
        },
        "transfers": rows,
    }


# --- overview ------------------------------------------------------------------------------------


def pulse(conn: Connection) -> dict[str, Any]:
    row = conn.execute(q.PULSE).fetchone()
    assert row is not None
    return dict(row)


def _series(conn: Connection, seconds: int, bucket: int) -> dict[str, Any]:
    now = conn.execute(q.NOW_SLOT, {"bucket": bucket}).fetchone()
    assert now is not None
    by_slot = {
        int(r["slot"]): r
        for r in conn.execute(q.FINISHED_SERIES, {"bucket": bucket, "seconds": seconds})
    }
    last = int(now["slot"])
    out = []
    for slot in range(last - seconds // bucket + 1, last + 1):
        r = by_slot.get(slot)
        out.append(
            {
                "start": slot * bucket,
                "succeeded": int(r["succeeded"]) if r else 0,
                "failed": int(r["failed"]) if r else 0,
                "cancelled": int(r["cancelled"]) if r else 0,
            }
        )
    peak = max([b["succeeded"] + b["failed"] + b["cancelled"] for b in out] + [1])
    return {"bars": out, "peak": peak, "bucket": bucket}


#: ``grp`` of each grouping of :data:`worker.sql.dashboard.WINDOW_SUMMARY` (GROUPING bits:
#: status, error class, provider, unit; a 1 is a column left out).
_BY_STATUS, _BY_ERROR, _BY_SPEND = 0b0111, 0b0011, 0b1100

#: Where a job's credits are, by its status.
_CREDITS_OF = {
    "queued": "held",
    "running": "held",
    "succeeded": "captured",
    "failed": "refunded",
    "cancelled": "refunded",
}


def _window(conn: Connection, seconds: int) -> dict[str, Any]:
    bound = conn.execute(stats_q.WINDOW_BOUNDARY, {"seconds": seconds}).fetchone()
    assert bound is not None
    rows = conn.execute(q.WINDOW_SUMMARY, {"after_id": int(bound["after_id"])}).fetchall()
    by_status = dict.fromkeys(stats.STATUSES, 0)
    credits = {"held": 0, "captured": 0, "refunded": 0, "refunds": 0}
    errors: dict[str, dict[str, Any]] = {}
    spend = []
    for r in rows:
        if r["grp"] == _BY_STATUS:
            status = str(r["status"])
            by_status[status] = int(r["n"])
            credits[_CREDITS_OF[status]] += int(r["credits"])
            if _CREDITS_OF[status] == "refunded":
                credits["refunds"] += int(r["paid"])
        elif r["grp"] == _BY_ERROR and r["error_class"] is not None:
            e = errors.setdefault(
                str(r["error_class"]), {"error_class": r["error_class"], "failed": 0, "active": 0}
            )
            if r["status"] == "failed":
                e["failed"] += int(r["n"])
            elif r["status"] in ("queued", "running"):
                e["active"] += int(r["n"])
        elif r["grp"] == _BY_SPEND and r["spent"] is not None:
            spend.append(
                {
                    "provider": r["provider"],
                    "unit": r["unit"] or "",
                    "spent": r["spent"],
                    "jobs": int(r["n"]),
                }
            )
    return {
        "jobs": sum(by_status.values()),
        "by_status": by_status,
        "errors": sorted(errors.values(), key=lambda e: (-e["failed"], e["error_class"])),
        "credits": credits,
        "spend": sorted(spend, key=lambda s: (str(s["provider"]), s["unit"])),
    }


def overview(conn: Connection) -> dict[str, Any]:
    """The overview page's data from PostgreSQL (keys, models and queues come from Redis)."""
    return {
        "windows": {"hour": _window(conn, 3_600), "day": _window(conn, 86_400)},
        "charts": {name: _series(conn, s, b) for name, (s, b) in CHARTS.items()},
        "active": stats.active_counts(conn),
        "stuck": stats.stuck_jobs(conn).as_dict(),
        "ledger": stats.ledger_totals(conn, with_refunds=False),
    }
