"""Migrations: idempotent, safe from several hosts at once, and refusing edited history."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ADMIN_URL, _db_url, drop_database
from worker import migrate as m


def test_concurrent_migrate_on_a_fresh_database_applies_once() -> None:
    url = _db_url(f"wt_mig_{threading.get_ident()}")
    drop_database(url)
    try:
        results: list[object] = []
        barrier = threading.Barrier(4)

        def go() -> None:
            barrier.wait()
            try:
                results.append(len(m.migrate(url)))
            except Exception as exc:  # pragma: no cover - the assertion below reports it
                results.append(exc)

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [0, 0, 0, len(m.discover())]  # type: ignore[type-var]
        assert m.migrate(url) == []
        assert m.pending(url) == []
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert [v[0] for v in versions] == [x.version for x in m.discover()]
    finally:
        drop_database(url)


def test_an_edited_applied_migration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _db_url("wt_mig_edit")
    drop_database(url)
    folder = tmp_path / "migrations"
    shutil.copytree(m.migrations_dir(), folder)
    monkeypatch.setattr(m, "migrations_dir", lambda: folder)
    try:
        m.migrate(url)
        first = sorted(folder.iterdir())[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(m.MigrationError, match="changed after it was applied"):
            m.migrate(url)
    finally:
        drop_database(url)


def test_admin_url_is_reachable() -> None:
    with psycopg.connect(ADMIN_URL) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
