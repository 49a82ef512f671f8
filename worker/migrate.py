"""A tiny migration runner: ordered SQL files, applied once, safe from N hosts at once.

``migrations/NNNN_name.sql`` files are applied in order, in one transaction that holds a
transaction-level advisory lock, so concurrent runs queue up instead of racing (and PgBouncer in
transaction mode is no obstacle). Applied versions are
recorded with a checksum; editing an applied file is refused rather than silently ignored.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from worker.db import connect
from worker.errors import WorkerError

#: Arbitrary constant: the advisory lock every `worker migrate` takes.
MIGRATION_LOCK_ID = 7_420_611_001

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(WorkerError):
    """A migration could not be applied, or an applied one was changed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """``migrations/`` in a source checkout, or the copy packaged inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "migrations", here / "_migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("the migrations folder is missing from this installation")


def discover(directory: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((directory or migrations_dir()).iterdir()):
        m = _FILE.match(path.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist. Returns True if created."""
    try:
        connect(url, autocommit=True).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    parts = urlsplit(url)
    dbname = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with connect(admin_url, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            return False
    return True


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def applied_versions(conn: psycopg.Connection[dict[str, object]]) -> dict[int, str]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') AS t").fetchone()
    if not exists or exists["t"] is None:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(r["version"]): str(r["checksum"]) for r in rows}  # type: ignore[call-overload]


def pending(url: str) -> list[Migration]:
    """Migrations not yet applied (for `worker doctor`)."""
    with connect(url, autocommit=True) as conn:
        done = applied_versions(conn)
    return [m for m in discover() if m.version not in done]


def migrate(url: str, *, create_database: bool = True) -> list[Migration]:
    """Apply every pending migration; return the ones this call applied.

    One transaction applies them all, after a transaction-level advisory lock (released by its
    COMMIT or ROLLBACK, so it works through PgBouncer in transaction mode too): a second
    `worker migrate` running at the same time waits for the lock, then finds nothing to do. A
    migration that fails rolls back the whole run: the schema is never left half-way."""
    if create_database:
        ensure_database(url)
    applied: list[Migration] = []
    with connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        conn.execute(_CREATE_TABLE)
        done = applied_versions(conn)
        for migration in discover():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.path.name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            try:
                with conn.transaction():  # a savepoint, so the error names the migration
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {migration.path.name} failed: {exc.diag.message_primary or exc}"
                ) from exc
            applied.append(migration)
    return applied
