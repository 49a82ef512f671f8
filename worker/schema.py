"""The schema as it stands after every migration, read back from PostgreSQL's catalog.

The migrations say how the schema got here, one change at a time; this says what it is, in one
place: the types, tables (columns, types, defaults, constraints, comments), indexes, views,
functions (their signatures) and triggers of the public schema, in a stable order, without
pg_dump. ``worker migrate --print-schema`` prints it for the configured database, and

    .venv/bin/python -m worker.schema > docs/schema.sql

regenerates ``docs/schema.sql`` from a scratch database that it creates, migrates and drops
(on the server of ``DATABASE_URL``). tests/test_schema_doc.py fails when the file is stale.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg import sql

from worker.db import Connection, connect
from worker.sql import schema as q

#: The command that regenerates docs/schema.sql (named in the file and in the test's failure).
REGENERATE = ".venv/bin/python -m worker.schema > docs/schema.sql"


def render(conn: Connection) -> str:
    """The schema of ``conn``'s database as SQL text that reads top to bottom."""
    applied = conn.execute(q.APPLIED).fetchall()
    names = ", ".join(f"{int(r['version']):04d}_{r['name']}" for r in applied) or "none"
    out = [
        "-- The database schema after every migration, read from PostgreSQL's catalog.",
        f"-- Migrations applied: {names}.",
        "-- Generated; do not edit. Change the schema with a new file in migrations/, then run",
        f"--   {REGENERATE}",
        "-- tests/test_schema_doc.py fails while this file differs from what they make.",
    ]
    sections = (
        ("Extensions", _extensions),
        ("Types", _types),
        ("Sequences", _sequences),
        ("Tables, their constraints and indexes", _tables),
        ("Views", _views),
        ("Functions, by signature (their bodies are in migrations/)", _functions),
        ("Triggers", _triggers),
    )
    for title, section in sections:
        lines = section(conn)
        if lines:
            out += ["", f"-- == {title} ==", "", *lines]
    return "\n".join(out) + "\n"


def _extensions(conn: Connection) -> list[str]:
    return [f"CREATE EXTENSION {r['name']};" for r in conn.execute(q.EXTENSIONS)]


def _types(conn: Connection) -> list[str]:
    lines = []
    for r in conn.execute(q.ENUMS):
        labels = ", ".join(_literal(label) for label in r["labels"])
        lines.append(f"CREATE TYPE {r['name']} AS ENUM ({labels});")
    for r in conn.execute(q.DOMAINS):
        parts = [f"CREATE DOMAIN {r['name']} AS {r['base']}"]
        if r["default"] is not None:
            parts.append(f"DEFAULT {r['default']}")
        if r["not_null"]:
            parts.append("NOT NULL")
        parts += list(r["checks"])
        lines.append(" ".join(parts) + ";")
    return lines


def _sequences(conn: Connection) -> list[str]:
    return [f"CREATE SEQUENCE {r['name']};" for r in conn.execute(q.SEQUENCES)]


def _tables(conn: Connection) -> list[str]:
    columns = _by_table(conn.execute(q.COLUMNS).fetchall())
    constraints = _by_table(conn.execute(q.CONSTRAINTS).fetchall())
    indexes = _by_table(conn.execute(q.INDEXES).fetchall())
    lines: list[str] = []
    for table in conn.execute(q.TABLES).fetchall():
        name = table["name"]
        if lines:
            lines.append("")
        lines += _comment(table["comment"], "")
        lines.append(f"CREATE TABLE {name} (")
        body: list[list[str]] = []
        width = max((len(c["name"]) for c in columns.get(name, [])), default=0)
        for c in columns.get(name, []):
            body.append([*_comment(c["comment"], "    "), f"    {c['name']:<{width}} {_column(c)}"])
        for k in constraints.get(name, []):
            body.append([f"    CONSTRAINT {k['name']} {k['definition']}"])
        for i, item in enumerate(body):
            lines += item[:-1]
            lines.append(item[-1] + ("," if i < len(body) - 1 else ""))
        lines.append(");")
        lines += [f"{i['definition']};" for i in indexes.get(name, [])]
    return lines


def _column(c: dict[str, Any]) -> str:
    parts = [str(c["type"])]
    if c["identity"]:
        parts.append("GENERATED " + ("ALWAYS" if c["identity"] == "a" else "BY DEFAULT"))
        parts.append("AS IDENTITY")
    elif c["generated"]:
        parts.append(f"GENERATED ALWAYS AS ({c['default']}) STORED")
    elif c["default"] is not None:
        parts.append(f"DEFAULT {c['default']}")
    if c["not_null"]:
        parts.append("NOT NULL")
    return " ".join(parts)


def _views(conn: Connection) -> list[str]:
    lines = []
    for r in conn.execute(q.VIEWS):
        kind = "MATERIALIZED VIEW" if r["materialized"] else "VIEW"
        lines.append(f"CREATE {kind} {r['name']} AS\n{str(r['definition']).rstrip()}")
    return lines


def _functions(conn: Connection) -> list[str]:
    lines = []
    for r in conn.execute(q.FUNCTIONS):
        lines += _comment(r["comment"], "")
        kind = "PROCEDURE" if r["kind"] == "p" else "FUNCTION"
        returns = f" RETURNS {r['result']}" if r["result"] else ""
        lines.append(
            f"{kind} {r['name']}({r['arguments']}){returns}"
            f" LANGUAGE {r['language']} {r['volatility']};"
        )
    return lines


def _triggers(conn: Connection) -> list[str]:
    return [f"{r['definition']};" for r in conn.execute(q.TRIGGERS)]


def _by_table(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["table"]), []).append(row)
    return grouped


def _comment(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}-- {line}".rstrip() for line in str(text).strip().splitlines()]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def of_database(url: str) -> str:
    """The schema of the database at ``url``, as it is now."""
    with connect(url, autocommit=True) as conn:
        return render(conn)


def of_migrations(server_url: str) -> str:
    """The schema the migrations make: on a scratch database created on ``server_url``'s
    server, migrated, read and dropped again."""
    from worker.migrate import migrate

    parts = urlsplit(server_url)
    name = f"schema_{uuid.uuid4().hex[:12]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    scratch = urlunsplit(parts._replace(path=f"/{name}"))
    with connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrate(scratch, create_database=False)
        return of_database(scratch)
    finally:
        with connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    """``python -m worker.schema``: print the schema the migrations make (see the module)."""
    from worker.config import load_settings

    sys.stdout.write(of_migrations(load_settings().database_url))


if __name__ == "__main__":
    main()
