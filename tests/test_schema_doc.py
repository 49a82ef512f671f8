"""docs/schema.sql is the schema the migrations make, and `worker migrate --print-schema` prints it."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import create_database, drop_database
from worker.schema import REGENERATE, of_database

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "schema.sql"


@pytest.fixture
def fresh_url() -> Iterator[str]:
    """A database made by the migrations alone, dropped afterwards."""
    url = create_database("ws")
    yield url
    drop_database(url)


def test_docs_schema_sql_is_what_the_migrations_make(fresh_url: str) -> None:
    made = of_database(fresh_url)
    written = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if made != written:
        diff = "".join(
            list(
                difflib.unified_diff(
                    written.splitlines(keepends=True),
                    made.splitlines(keepends=True),
                    "docs/schema.sql",
                    "the migrations",
                )
            )[:60]
        )
        pytest.fail(f"docs/schema.sql is stale; regenerate it with\n    {REGENERATE}\n{diff}")


def test_the_schema_names_what_the_migrations_create(fresh_url: str) -> None:
    text = of_database(fresh_url)
    with psycopg.connect(fresh_url) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert tables and versions
    for table in tables:
        assert f"\nCREATE TABLE {table} (\n" in text
    for version in versions:
        assert f"{version:04d}_" in text.splitlines()[1]
    # Constraints, defaults, partial indexes, function signatures and triggers are all there.
    assert "CONSTRAINT accounts_no_overdraft CHECK" in text
    assert "DEFAULT now() NOT NULL" in text
    assert "CREATE UNIQUE INDEX transfers_resolve_once ON public.transfers" in text
    assert "FUNCTION job_transfer_id(p_job_id bigint, p_kind integer) RETURNS uuid" in text
    assert "CREATE TRIGGER transfers_immutable BEFORE DELETE OR UPDATE ON transfers" in text


def test_a_schema_change_shows_and_the_order_is_stable(fresh_url: str) -> None:
    before = of_database(fresh_url)
    assert of_database(fresh_url) == before
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE jobs ADD COLUMN extra integer DEFAULT 7 CHECK (extra > 0)")
        conn.execute("COMMENT ON COLUMN jobs.extra IS 'a column no migration made'")
        conn.execute("CREATE INDEX jobs_extra ON jobs (extra)")
    after = of_database(fresh_url)
    assert after != before
    assert "    -- a column no migration made\n    extra            integer DEFAULT 7," in after
    assert "CONSTRAINT jobs_extra_check CHECK (extra > 0)" in after
    assert "CREATE INDEX jobs_extra ON public.jobs USING btree (extra);" in after


def test_worker_migrate_print_schema(fresh_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_url}
    command = [sys.executable, "-m", "worker.cli.main", "migrate", "--print-schema"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == of_database(fresh_url)
    as_json = subprocess.run(
        [*command, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"applied": [], "schema": done.stdout}
