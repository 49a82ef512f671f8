"""The connection budget (worker/connection_budget.py) and `worker doctor --instances N --hosts H`
against a real PostgreSQL, and against a real PgBouncer's pool when one is in front."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from tests.pgbouncer import PgBouncer, pgbouncer_binary
from worker import connection_budget
from worker.cli.main import cli
from worker.config import Settings, load_settings
from worker.db import connect

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def test_the_defaults_fit_20_instances_into_a_stock_server_with_20_to_spare() -> None:
    s = load_settings(_env_file=None)
    plan = connection_budget.budget(s, instances=20)
    # A stock PostgreSQL: max_connections 100, 3 reserved for superusers.
    allowed = connection_budget.postgres_allows(
        {"max_connections": 100, "superuser_reserved": 3, "reserved": 0}
    )
    workers = 20 * s.db_pool_max
    assert workers <= 80
    assert allowed - workers - plan.per_host_extra >= 20  # psql, the bot, backups
    assert plan.needed <= allowed
    assert plan.formula() == (
        "1 host(s) × (20 instance(s) × 3 + 6 webhooks and CLI) + 10 spare = 76"
    )
    with pytest.raises(ValueError, match="at least 1"):
        connection_budget.budget(s, instances=0)


def _doctor(settings: Settings, *args: str) -> tuple[int, dict[str, object]]:
    import json

    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "REDIS_NAMESPACE": settings.redis_namespace, "STORAGE_DIR": str(settings.storage_dir)}  # fmt: skip
    result = CliRunner().invoke(cli, ["doctor", "--json", *args], env=env)
    report = json.loads(result.output)
    (check,) = [c for c in report["checks"] if c["name"] == "connections"]
    return result.exit_code, check


def test_doctor_checks_instances_and_hosts_against_max_connections(settings: Settings) -> None:
    with psycopg.connect(ADMIN_URL) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    max_connections = int(row[0]) if row else 0
    fits = max(1, (max_connections - 3 - 10 - 6) // 3)  # instances one host can run
    _, check = _doctor(settings, "--instances", str(fits))
    assert check["ok"], check
    _, check = _doctor(settings, "--instances", str(fits), "--hosts", "2")
    assert not check["ok"] and "2 host(s)" in str(check["detail"]), check
    assert "DB_POOL_MAX" in str(check["fix"])


@pytest.fixture
def bouncer() -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer)")
    with PgBouncer(ADMIN_URL, pool_size=7) as running:
        yield running


def test_behind_pgbouncer_the_budget_is_its_client_limit_and_pool(
    settings: Settings, bouncer: PgBouncer
) -> None:
    url = bouncer.url_for(settings.database_url)
    with connect(url, autocommit=True) as conn:
        ok = connection_budget.check(settings, conn, instances=20, hosts=5)
        too_many = connection_budget.check(settings, conn, instances=200, hosts=5)
    # 5 × (20 × 3 + 6) + 10 = 340 clients for PgBouncer, whose 7 server connections fit.
    assert ok.ok and "behind PgBouncer" in ok.detail and "server pool 7" in ok.detail, ok
    assert "340 client connections needed, max_client_conn 2000" in ok.detail
    assert not too_many.ok and "raise max_client_conn to at least 3040" in too_many.fix
