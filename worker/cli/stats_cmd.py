"""`worker jobs stats` (filled in by the operations work)."""

from __future__ import annotations

import click


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def stats(as_json: bool) -> None:
    """Counts by status and error class, step durations, refunds and credits."""
    raise click.ClickException("not implemented yet")
