"""`worker models ls|enable|disable`: the resources the kinds switch among (their models), as
every worker sees them in Redis (``worker.models``): live, paused until a time, or disabled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from worker.broker import redis_client
from worker.cli.context import CliContext
from worker.cli.output import output, table
from worker.errors import RequestRefused
from worker.kinds import all_kinds
from worker.models import ResourceGroup, ResourceStatus


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _groups(obj: CliContext) -> list[tuple[str, ResourceGroup]]:
    return [(k.name, k.resources) for k in all_kinds() if k.resources is not None]


def _row(kind: str, group: ResourceGroup, s: ResourceStatus) -> dict[str, Any]:
    return {
        "kind": kind,
        "group": group.name,
        "name": s.name,
        "state": str(s.state),
        "until": _when(s.until),
        "since": _when(s.since),
        "reason": s.reason,
        "pauses": s.pauses,
        "last_error": s.last_error,
        "last_error_at": _when(s.last_error_at),
    }


def _find(obj: CliContext, name: str) -> tuple[str, ResourceGroup]:
    for kind, group in _groups(obj):
        if name in group.names(obj.settings):
            return kind, group
    known = [n for _, g in _groups(obj) for n in g.names(obj.settings)]
    raise RequestRefused(f"there is no model {name!r} (models: {', '.join(known) or 'none'})")


@click.group("models")
def models() -> None:
    """Models the job kinds choose among: state (live, paused, disabled) and last error."""


@models.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def ls(obj: CliContext, as_json: bool) -> None:
    """List every model with its state, as every worker sees it."""
    redis = redis_client(obj.settings)
    rows = []
    for kind, group in _groups(obj):
        switches = group.switches(redis, obj.settings)
        rows += [_row(kind, group, s) for s in switches.statuses(group.names(obj.settings))]

    def human() -> None:
        if not rows:
            click.echo("no job kind declares models")
            return
        table(
            None,
            ["kind", "model", "state", "until / since", "pauses", "last error"],
            [
                [
                    r["kind"],
                    r["name"],
                    r["state"],
                    (r["until"] if r["state"] == "paused" else r["since"]) or "",
                    r["pauses"],
                    r["reason"] or r["last_error"] or "",
                ]
                for r in rows
            ],
        )

    output(as_json, rows, human)


@models.command("enable")
@click.argument("name")
@click.pass_obj
def enable(obj: CliContext, name: str) -> None:
    """Make a model live again at once (clears a disable and a pause)."""
    _, group = _find(obj, name)
    s = group.switches(redis_client(obj.settings), obj.settings).enable(name)
    click.echo(f"{group.noun} {s.name} is {s.state}")


@models.command("disable")
@click.argument("name")
@click.option("--reason", default="disabled by an operator", show_default=True)
@click.pass_obj
def disable(obj: CliContext, name: str, reason: str) -> None:
    """Stop using a model (jobs fall through to the next of their chain) until enabled."""
    _, group = _find(obj, name)
    s = group.switches(redis_client(obj.settings), obj.settings).disable(name, reason)
    click.echo(f"{group.noun} {s.name} is {s.state}: {s.reason}")


COMMANDS = [models]
