"""The backlog at each kind's bottleneck (``worker.fair_gate``): a warning when more jobs wait
for the provider's slots than the accounts can create before the jobs' deadline."""

from __future__ import annotations

from typing import Any

import psycopg

from worker.admission import Admission
from worker.config import Settings
from worker.db import Database
from worker.doctor.check import Check, first_line, not_checked
from worker.kinds import all_kinds


def names() -> list[str]:
    return [f"{kind.name} backlog" for kind in all_kinds() if kind.gate is not None]


def backlog_checks(settings: Settings, *, timeout: float) -> list[Check]:
    kinds = [kind for kind in all_kinds() if kind.gate is not None]
    db = Database(settings.database_url, min_size=1, max_size=1, name="doctor")
    try:
        db.open(timeout=timeout)
    except Exception as exc:
        why = f"no connection to PostgreSQL ({first_line(exc)})"
        return [not_checked(f"{k.name} backlog", why, "Check DATABASE_URL.") for k in kinds]
    try:
        admission = Admission(settings, db)
        return [_check(kind.name, admission.report(kind) or {}) for kind in kinds]
    except psycopg.Error as exc:
        why = f"cannot read the backlog ({first_line(exc)})"
        return [not_checked(f"{k.name} backlog", why, "Run `worker migrate`.") for k in kinds]
    finally:
        db.close()


def _check(kind: str, report: dict[str, Any]) -> Check:
    name = f"{kind} backlog"
    waiting = int(report.get("waiting") or 0)
    slots = f"{report.get('provider')} {report.get('purpose')} slots"
    if report.get("per_minute") is None:
        return Check(name, True, f"{waiting} jobs waiting for {slots} (not paced)")
    limit, creatable = report.get("max_wait_seconds"), report.get("creatable_before_deadline")
    pace = (
        f"{waiting} jobs waiting for {slots}; the accounts create {report['per_minute']:g} a minute"
    )
    if limit is None or creatable is None:
        return Check(
            name,
            True,
            f"{pace}; no admission limit (the deadline is shorter than the typical time after "
            "the slot, so nothing is refused as Busy)",
        )
    detail = f"{pace}, {creatable:g} within the {float(limit) / 60:.1f} min a job may wait"
    if waiting <= float(creatable):
        return Check(name, True, detail)
    return Check(
        name,
        True,
        detail + f": about {waiting - float(creatable):.0f} would miss their deadline",
        "Add provider accounts (keys of other accounts), or lower ADMISSION_MAX_WAIT_SECONDS so "
        "new requests are refused as Busy instead of waiting past their deadline.",
        warning=True,
    )
