"""The PostgreSQL connection budget of a deployment, and `worker doctor`'s check of it.

Every worker process holds at most ``DB_POOL_MAX`` connections (its threads, the lease keeper,
the maintenance leader and the health check share one pool). Each host also runs one
`worker webhooks` (a pool of ``max(4, DB_POOL_MAX)``) and the odd CLI command (2); the bot,
`worker migrate`, psql and backups need a few more, once for the whole cluster::

    hosts × (instances × DB_POOL_MAX + webhooks + CLI) + SPARE ≤ what PostgreSQL allows

What PostgreSQL allows is ``max_connections`` minus its reserved slots. Behind PgBouncer the
workers' connections are PgBouncer's clients: the sum must fit its ``max_client_conn``, and
only PgBouncer's own server pool (``default_pool_size`` + ``reserve_pool_size`` per database and
user) must fit PostgreSQL, whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from worker.config import Settings
from worker.db import behind_pooler
from worker.doctor.check import Check, first_line

#: Connections one host's CLI commands may hold at once (worker.cli.context: a pool of 2).
CLI_CONNECTIONS = 2
#: For the whole cluster: the bot's pool, `worker migrate`, psql, backups.
SPARE_CONNECTIONS = 10

_STATS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce((SELECT setting::int FROM pg_settings WHERE name = 'reserved_connections'), 0)
           AS reserved
"""


def webhooks_connections(settings: Settings) -> int:
    """The pool of one `worker webhooks` (worker.webhook_server)."""
    return max(4, settings.db_pool_max)


@dataclass(frozen=True)
class Budget:
    """How many connections ``hosts`` hosts of ``instances`` worker processes each need."""

    instances: int
    hosts: int
    per_instance: int
    per_host_extra: int
    spare: int = SPARE_CONNECTIONS

    @property
    def per_host(self) -> int:
        return self.instances * self.per_instance + self.per_host_extra

    @property
    def needed(self) -> int:
        return self.hosts * self.per_host + self.spare

    def formula(self) -> str:
        return (
            f"{self.hosts} host(s) × ({self.instances} instance(s) × {self.per_instance} + "
            f"{self.per_host_extra} webhooks and CLI) + {self.spare} spare = {self.needed}"
        )


def budget(settings: Settings, *, instances: int, hosts: int = 1) -> Budget:
    if instances < 1 or hosts < 1:
        raise ValueError(f"instances and hosts must be at least 1, got {instances} and {hosts}")
    return Budget(
        instances=instances,
        hosts=hosts,
        per_instance=settings.db_pool_max,
        per_host_extra=webhooks_connections(settings) + CLI_CONNECTIONS,
    )


def postgres_allows(limits: dict[str, Any]) -> int:
    """Connections PostgreSQL gives ordinary roles: max_connections minus the reserved ones."""
    reserved = int(limits["superuser_reserved"]) + int(limits.get("reserved") or 0)
    return int(limits["max_connections"]) - reserved


def check(
    settings: Settings,
    conn: psycopg.Connection[Any],
    *,
    instances: int,
    hosts: int = 1,
    timeout: float = 5.0,
) -> Check:
    """`worker doctor`'s "connections" check, on its open connection ``conn``."""
    plan = budget(settings, instances=instances, hosts=hosts)
    with conn.cursor(row_factory=dict_row) as cur:
        limits = cur.execute(_STATS, prepare=False).fetchone()
    assert limits is not None
    allowed = postgres_allows(limits)
    pg = f"PostgreSQL allows {allowed} (max_connections {limits['max_connections']} − reserved)"
    pooled = settings.database_pooler == "pgbouncer" or (
        settings.database_pooler == "auto" and behind_pooler(conn)
    )
    if not pooled:
        detail = f"{plan.formula()} needed; {pg}"
        if plan.needed <= allowed:
            return Check("connections", True, detail)
        return Check(
            "connections",
            False,
            detail,
            f"Run fewer instances or lower DB_POOL_MAX (each instance takes DB_POOL_MAX = "
            f"{settings.db_pool_max}), raise max_connections in postgresql.conf, or put "
            "PgBouncer in transaction mode in front (docs/deploy.md, More than one machine).",
        )
    # PgBouncer's admin console: the same address and user, database "pgbouncer".
    admin = make_conninfo(
        settings.database_url,
        host=conn.info.host,
        port=str(conn.info.port),
        user=conn.info.user,
        dbname="pgbouncer",
    )
    return _pgbouncer_check(admin, plan, allowed, pg, timeout)


def _pgbouncer_check(admin: str, plan: Budget, allowed: int, pg: str, timeout: float) -> Check:
    try:
        with psycopg.connect(
            admin, autocommit=True, connect_timeout=max(1, round(timeout))
        ) as console:
            rows = console.execute("SHOW CONFIG").fetchall()
    except psycopg.Error as exc:
        return Check(
            "connections",
            True,
            f"behind a connection pooler: {plan.formula()} client connections needed; "
            f"cannot read the pooler's settings ({first_line(exc)})",
            "Add the worker's database user to PgBouncer's stats_users so `worker doctor` can "
            "read SHOW CONFIG, or check max_client_conn and default_pool_size by hand.",
            warning=True,
        )
    config = {str(r[0]): str(r[1]) for r in rows}
    clients = int(config.get("max_client_conn", "0") or 0)
    pool = int(config.get("default_pool_size", "0") or 0)
    pool += int(config.get("reserve_pool_size", "0") or 0)
    detail = (
        f"behind PgBouncer: {plan.formula()} client connections needed, max_client_conn "
        f"{clients}; its server pool {pool} (default_pool_size + reserve_pool_size); {pg}"
    )
    problems = []
    if plan.needed > clients:
        problems.append(f"raise max_client_conn to at least {plan.needed}")
    if pool > allowed:
        problems.append(f"lower default_pool_size + reserve_pool_size to at most {allowed}")
    if not problems:
        return Check("connections", True, detail)
    return Check("connections", False, detail, "In pgbouncer.ini: " + "; ".join(problems) + ".")
