"""`worker demo` never lands on another database (issue 22, finding 12): a ``dbname=`` in
DATABASE_URL's query string overrides the path, so the demo used to migrate and fill the
production database instead of its own."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from worker.config import Settings, load_settings
from worker.demo import _demo_database_url, run_demo
from worker.errors import WorkerError


@pytest.mark.parametrize(
    "base",
    [
        "postgresql://postgres@127.0.0.1:5432/worker?dbname=production",
        "postgresql://postgres@127.0.0.1:5432/worker?sslmode=disable&dbname=production",
        "postgresql://postgres@127.0.0.1:5432/worker?service=prod",
        "postgresql:///worker?host=/var/run/postgresql&dbname=production",
    ],
)
def test_the_demo_url_names_only_the_demo_database(base: str) -> None:
    url = _demo_database_url(base, "worker_demo")
    info = conninfo_to_dict(url)
    assert info["dbname"] == "worker_demo"
    assert "service" not in info
    assert info.get("host", "127.0.0.1") in ("127.0.0.1", "/var/run/postgresql")


@pytest.mark.parametrize("name", ["worker", "postgres", ""])
def test_the_demo_refuses_a_database_not_named_for_it(name: str) -> None:
    with pytest.raises(WorkerError):
        _demo_database_url("postgresql://postgres@127.0.0.1:5432/x", name)


def test_the_demo_does_not_touch_the_database_of_the_query_string(
    settings: Settings, tmp_path: Path
) -> None:
    victim = conninfo_to_dict(settings.database_url)["dbname"]
    base = load_settings(
        database_url=f"postgresql://postgres@127.0.0.1:5432/postgres?dbname={victim}",
        storage_dir=str(tmp_path),
        _env_file=None,
    )
    with psycopg.connect(settings.database_url) as conn:
        before = conn.execute("SELECT count(*) FROM jobs").fetchone()
    try:
        run_demo(base, timeout=20, database="wt_demo_never", namespace="wtest-demo-never")
    except WorkerError:
        pass  # refused, or went to its own database: either way not the victim's
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute('DROP DATABASE IF EXISTS "wt_demo_never" WITH (FORCE)')
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == before
