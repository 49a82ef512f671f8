"""`worker doctor`: configuration and connectivity, with the fix for each problem."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from worker import doctor as checks_
from worker.cli.output import console, emit_json
from worker.config import load_settings
from worker.errors import ConfigError
from worker.kinds import all_kinds

_MARKS = {"ok": "[green]ok  [/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--instances",
    type=click.IntRange(1, 10_000),
    default=checks_.DEFAULT_INSTANCES,
    show_default=True,
    help="Worker processes per host to plan PostgreSQL connections for.",
)
@click.option(
    "--hosts",
    type=click.IntRange(1, 1_000),
    default=1,
    show_default=True,
    help="Hosts running that many worker processes each (and one `worker webhooks`).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60.0),
    default=checks_.DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds each network check may take.",
)
def doctor(as_json: bool, instances: int, hosts: int, timeout: float, **options: float) -> None:
    """Check configuration, services, provider keys, storage and stuck work; exit 1 on a failure."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        # The doctor's job is to say what is misconfigured, so this is a finding, not bad usage.
        found = [
            checks_.Check(
                "configuration",
                False,
                str(exc),
                "Correct that variable in the environment file (or the systemd credential).",
            )
        ]
    else:
        found = checks_.run_checks(
            settings, instances=instances, timeout=timeout, options=options, hosts=hosts
        )
    ok = all(c.ok for c in found)
    if as_json:
        emit_json({"ok": ok, "checks": [c.as_dict() for c in found]})
    else:
        _print(found, ok)
    sys.exit(0 if ok else 1)


# The options the job kinds' checks take (e.g. a balance below which an account gets a warning).
for _option in {o.flag: o for kind in all_kinds() for o in kind.doctor_options}.values():
    doctor.params.append(
        click.Option(
            [_option.flag, _option.name],
            type=click.FloatRange(0),
            default=_option.default,
            show_default=True,
            help=_option.help,
        )
    )


def _print(found: list[checks_.Check], ok: bool) -> None:
    width = max(len(c.name) for c in found)
    for check in found:
        row = check.as_dict()
        name = escape(f"{check.name:<{width}}")
        console.print(f"{_MARKS[check.level]}  {name}  {escape(row['detail'])}")
        if check.level != "ok" and row["fix"]:
            console.print(f"      {'':<{width}}  [bold]fix:[/bold] {escape(row['fix'])}")
    failed = sum(1 for c in found if not c.ok)
    warned = sum(1 for c in found if c.ok and c.warning)
    console.print()
    if ok:
        console.print(
            f"all {len(found)} checks passed" + (f", {warned} warning(s)" if warned else "")
        )
    else:
        console.print(f"[red]{failed} of {len(found)} checks failed[/red]")


COMMANDS = [doctor]
