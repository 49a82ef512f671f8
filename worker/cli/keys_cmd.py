"""`worker keys ls|enable|disable`: the shared key pool, by name. Never the secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from worker.broker import redis_client
from worker.cli.context import CliContext
from worker.cli.output import output, table
from worker.keys import KeyPool, KeyStatus
from worker.kinds import all_providers


def _pool(obj: CliContext) -> KeyPool:
    return KeyPool.from_settings(obj.settings, redis_client(obj.settings))


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def status_dict(s: KeyStatus) -> dict[str, Any]:
    return {
        "name": s.name,
        "provider": s.provider,
        "state": str(s.state),
        "cooling_until": _when(s.cooling_until),
        "reason": s.reason,
        "since": _when(s.since),
        "last_used": _when(s.last_used),
        "uses": s.uses,
        "errors": s.errors,
        "last_error": s.last_error,
    }


@click.group("keys")
def keys() -> None:
    """Provider API keys: state, use and errors; enable or disable by name."""


@keys.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def ls(obj: CliContext, as_json: bool) -> None:
    """List every configured key with its state (active, cooling, quarantined, disabled)."""
    rows = [status_dict(s) for s in _pool(obj).statuses()]

    def human() -> None:
        if not rows:
            variables = " and ".join(p.keys_variable for p in all_providers())
            click.echo(f"no keys configured (set {variables})")
            return
        table(
            None,
            ["provider", "name", "state", "until / since", "uses", "errors", "last used", "reason"],
            [
                [
                    r["provider"],
                    r["name"],
                    r["state"],
                    (r["cooling_until"] if r["state"] == "cooling" else r["since"]) or "",
                    r["uses"],
                    r["errors"],
                    r["last_used"] or "never",
                    r["reason"] or r["last_error"] or "",
                ]
                for r in rows
            ],
        )

    output(as_json, rows, human)


@keys.command("enable")
@click.argument("name")
@click.option("--provider", help="Needed only if two providers have a key of this name.")
@click.pass_obj
def enable(obj: CliContext, name: str, provider: str | None) -> None:
    """Bring a key back: clears quarantine, disable and cooldown."""
    s = _pool(obj).enable(name, provider)
    click.echo(f"{s.provider} key {s.name} is {s.state}")


@keys.command("disable")
@click.argument("name")
@click.option("--provider", help="Needed only if two providers have a key of this name.")
@click.option("--reason", default="disabled by operator", show_default=True)
@click.pass_obj
def disable(obj: CliContext, name: str, provider: str | None, reason: str) -> None:
    """Stop handing out a key (tasks it created are still polled with it)."""
    s = _pool(obj).disable(name, provider, reason)
    click.echo(f"{s.provider} key {s.name} is {s.state}: {s.reason}")


COMMANDS = [keys]
