"""PostgreSQL checks: reachable, schema current, connection budget, stuck jobs."""

from __future__ import annotations

import math

import psycopg
from psycopg.rows import dict_row

from worker import connection_budget as budget_
from worker import stats
from worker.config import Settings
from worker.doctor.check import Check, first_line, not_checked
from worker.sql import stats as q

#: The checks :func:`postgres_checks` reports, in order (the rest are "not checked" when
#: PostgreSQL cannot be reached).
NAMES = ("postgres", "migrations", "connections", "stuck jobs")


def connection_budget(settings: Settings, instances: int, hosts: int = 1) -> tuple[int, int]:
    """Connections one worker process may open (``DB_POOL_MAX``), and what the deployment
    needs (worker.connection_budget has the formula)."""
    plan = budget_.budget(settings, instances=instances, hosts=hosts)
    return plan.per_instance, plan.needed


def postgres_checks(
    settings: Settings, *, instances: int, timeout: float, hosts: int = 1
) -> list[Check]:
    url = settings.database_url
    fix_reach = (
        "Check DATABASE_URL and that PostgreSQL is running and accepts connections from this host."
    )
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, math.ceil(timeout)),
            row_factory=dict_row,
            application_name="worker-doctor",
            options=f"-c statement_timeout={int(timeout * 1000)}",
        )
    except psycopg.Error as exc:
        reason = first_line(exc)
        fix = fix_reach
        if "does not exist" in reason:
            fix = "Run `worker migrate`, which creates the database and its schema."
        return [
            Check("postgres", False, f"cannot connect: {reason}", fix),
            *(not_checked(n, "no connection to PostgreSQL", fix) for n in NAMES[1:]),
        ]
    checks: list[Check] = []
    with conn:
        limits = conn.execute(q.CONNECTION_LIMITS).fetchone()
        assert limits is not None
        checks.append(Check("postgres", True, f"PostgreSQL {limits['version']} reachable"))

        schema_ok = True
        try:
            from worker.migrate import pending

            waiting = pending(url)
        except Exception as exc:  # a broken migrations folder or a permission problem
            schema_ok = False
            checks.append(
                Check(
                    "migrations",
                    False,
                    f"cannot read the applied migrations: {first_line(exc)}",
                    "Run `worker migrate` and read its error.",
                )
            )
        else:
            if waiting:
                schema_ok = False
                names = ", ".join(m.path.name for m in waiting)
                checks.append(
                    Check(
                        "migrations",
                        False,
                        f"{len(waiting)} not applied: {names}",
                        "Run `worker migrate` (safe to run from several hosts at once).",
                    )
                )
            else:
                checks.append(Check("migrations", True, "schema is current"))

        checks.append(
            budget_.check(settings, conn, instances=instances, hosts=hosts, timeout=timeout)
        )

        if not schema_ok:
            checks.append(
                not_checked("stuck jobs", "the schema is not current", "Run `worker migrate`.")
            )
        else:
            checks.append(_stuck_check(stats.stuck_jobs(conn)))
    return checks


def _stuck_check(stuck: stats.Stuck) -> Check:
    if not stuck.total:
        return Check("stuck jobs", True, "none")
    parts = []
    if stuck.queued_overdue:
        oldest = stuck.oldest_overdue_seconds or 0.0
        parts.append(
            f"{stuck.queued_overdue} queued and overdue by more than "
            f"{stats.STUCK_AFTER_SECONDS / 60:g} min (oldest {oldest / 60:.0f} min)"
        )
    if stuck.lease_expired:
        parts.append(f"{stuck.lease_expired} running with an expired lease")
    examples = ", ".join(str(i) for i in stuck.examples)
    return Check(
        "stuck jobs",
        False,
        f"{stuck.total} stuck: {'; '.join(parts)} (e.g. job {examples})",
        "Start or restart the workers (`systemctl start worker.target`): their maintenance loop "
        "re-sends overdue jobs and rescues expired leases; `worker jobs show ID` explains one.",
    )
