"""`worker migrate`, `worker fake-provider` (and later `run`, `demo`)."""

from __future__ import annotations

import click

from worker.cli.context import CliContext
from worker.cli.output import emit_json


@click.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def migrate(obj: CliContext, as_json: bool) -> None:
    """Apply pending migrations (creates the database if missing). Safe to run again, and from
    several hosts at once."""
    from worker.migrate import migrate as run_migrations

    applied = run_migrations(obj.settings.database_url)
    if as_json:
        emit_json({"applied": [f"{m.version:04d}_{m.name}" for m in applied]})
    elif applied:
        for m in applied:
            click.echo(f"applied {m.version:04d}_{m.name}")
    else:
        click.echo("database is up to date")


COMMANDS = [migrate]
