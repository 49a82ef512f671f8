"""`worker keys ls|enable|disable`: the shared key pool, by name, grouped by provider account.
Never the secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from worker.broker import redis_client
from worker.cli.context import CliContext
from worker.cli.output import output, table
from worker.keys import AccountStatus, KeyPool, KeyStatus, Pace
from worker.kinds import all_providers


def _pool(obj: CliContext) -> KeyPool:
    return KeyPool.from_settings(obj.settings, redis_client(obj.settings))


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def pace_dict(p: Pace) -> dict[str, Any]:
    return {
        "used": p.used,
        "limit": p.limit.count,
        "window_seconds": p.limit.seconds,
        "scope": str(p.scope),
    }


def account_dict(a: AccountStatus) -> dict[str, Any]:
    return {
        "provider": a.provider,
        "account": a.account,
        "keys": list(a.keys),
        "pace": {p.purpose: pace_dict(p) for p in a.pace},
    }


def status_dict(s: KeyStatus, account: AccountStatus | None = None) -> dict[str, Any]:
    """One key's row; ``pace`` holds its account's per-account pace (``account``) beside its own
    per-key pace, each entry saying its scope."""
    pace = [*(account.pace if account is not None else ()), *s.pace]
    return {
        "name": s.name,
        "provider": s.provider,
        "account": s.account,
        "state": str(s.state),
        "cooling_until": _when(s.cooling_until),
        "reason": s.reason,
        "since": _when(s.since),
        "last_used": _when(s.last_used),
        "uses": s.uses,
        "errors": s.errors,
        "last_error": s.last_error,
        "pace": {p.purpose: pace_dict(p) for p in pace},
    }


@click.group("keys")
def keys() -> None:
    """Provider API keys: state, use and errors; enable or disable by name."""


@keys.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def ls(obj: CliContext, as_json: bool) -> None:
    """List every provider account with its keys and its pace now (requests in the current
    window of each limit paced per account), then every key with its state (active, cooling,
    quarantined, disabled) and its pace of the limits paced per key. With --json: one row per
    key, with its account and both paces."""
    pool = _pool(obj)
    by_account = {(a.provider, a.account): a for a in pool.accounts()}
    accounts = [account_dict(a) for a in by_account.values()]
    rows = [status_dict(s, by_account.get((s.provider, s.account))) for s in pool.statuses()]

    def pace_text(pace: dict[str, dict[str, Any]]) -> str:
        return ", ".join(
            f"{purpose} {p['used']}/{p['limit']} per {p['window_seconds']:g}s"
            for purpose, p in pace.items()
        )

    def human() -> None:
        if not rows:
            variables = " and ".join(p.keys_variable for p in all_providers())
            click.echo(f"no keys configured (set {variables})")
            return
        table(
            "accounts",
            ["provider", "account", "keys", "pace now"],
            [
                [a["provider"], a["account"], ", ".join(a["keys"]), pace_text(a["pace"]) or "-"]
                for a in accounts
            ],
        )
        click.echo()
        table(
            "keys",
            [
                "provider",
                "account",
                "name",
                "state",
                "until / since",
                "uses",
                "errors",
                "last used",
                "pace now",
                "reason",
            ],
            [
                [
                    r["provider"],
                    r["account"],
                    r["name"],
                    r["state"],
                    (r["cooling_until"] if r["state"] == "cooling" else r["since"]) or "",
                    r["uses"],
                    r["errors"],
                    r["last_used"] or "never",
                    pace_text({k: p for k, p in r["pace"].items() if p["scope"] == "key"}) or "-",
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
