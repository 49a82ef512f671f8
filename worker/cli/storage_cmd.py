"""`worker storage prune`: remove the stored files of jobs finished long ago, now."""

from __future__ import annotations

import click

from worker import retention
from worker.cli.context import CliContext
from worker.cli.output import fail, output, table


@click.group("storage")
def storage_group() -> None:
    """The stored result files (STORAGE_DIR)."""


@storage_group.command("prune")
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0, min_open=True),
    help="Keep files of jobs finished more recently (default: STORAGE_RETENTION_DAYS).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def prune(obj: CliContext, older_than_days: float | None, dry_run: bool, as_json: bool) -> None:
    """Remove the files of jobs that finished more than the retention ago, with an event each.

    A file whose job is unfinished, finished recently or unknown to this database is kept.
    The workers run the same pass about once an hour."""
    days = older_than_days if older_than_days is not None else obj.settings.storage_retention_days
    if days <= 0:
        fail("STORAGE_RETENTION_DAYS is 0 (keep every file); pass --older-than-days to prune")
    report = retention.prune(obj.settings.storage_dir, obj.db, days * 86400, dry_run=dry_run)
    document = {"storage_dir": str(obj.settings.storage_dir), "older_than_days": days}
    document |= report.as_dict()

    def human() -> None:
        if report.skipped:
            click.echo("another process on this host is pruning; nothing done")
            return
        verb = "would remove" if dry_run else "removed"
        table(
            None,
            ["", ""],
            [
                [f"files {verb}", f"{report.removed:,} ({report.removed_bytes:,} bytes)"],
                ["old files kept (job unfinished, recent or unknown)", f"{report.kept:,}"],
                [f"stale partial downloads {verb}", f"{report.partials_removed:,}"],
            ],
        )

    output(as_json, document, human)


COMMANDS = [storage_group]
