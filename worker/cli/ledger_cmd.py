"""`worker ledger check`: every ledger invariant, exit 1 if one fails."""

from __future__ import annotations

import sys

import click

from worker import ledger
from worker.cli.context import CliContext
from worker.cli.output import emit_json, table


@click.group("ledger")
def ledger_group() -> None:
    """Inspect the credit ledger."""


@ledger_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def check(obj: CliContext, as_json: bool) -> None:
    """Check the ledger's invariants; exit status 1 if any fails."""
    with obj.db.transaction() as conn:
        checks = ledger.check(conn)
    ok = all(c.ok for c in checks)
    if as_json:
        emit_json({"ok": ok, "checks": [c.as_dict() for c in checks]})
    else:
        table(
            None,
            ["check", "ok", "detail"],
            [[c.name, "ok" if c.ok else "FAILED", c.detail] for c in checks],
        )
        click.echo("ledger ok" if ok else "ledger check FAILED", err=not ok)
    sys.exit(0 if ok else 1)


COMMANDS = [ledger_group]
