"""`worker credits grant|show`."""

from __future__ import annotations

import click

from worker.cli.context import CliContext
from worker.cli.output import output, table


@click.group("credits")
def credits() -> None:
    """Grant credits and show a user's balance."""


@credits.command("grant")
@click.argument("user_id", type=int)
@click.argument("amount", type=int)
@click.option("--idempotency-key", help="A replay with the same key changes nothing.")
@click.option("--reason", default="granted by operator", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def grant(
    obj: CliContext,
    user_id: int,
    amount: int,
    idempotency_key: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Add AMOUNT credits to USER_ID."""
    balance = obj.client.grant(user_id, amount, idempotency_key=idempotency_key, reason=reason)
    output(as_json, balance.as_dict(), lambda: _show(balance.as_dict()))


@credits.command("show")
@click.argument("user_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def show(obj: CliContext, user_id: int, as_json: bool) -> None:
    """Show USER_ID's credits: available, held by running jobs, spent, refunded."""
    balance = obj.client.balance(user_id).as_dict()
    output(as_json, balance, lambda: _show(balance))


def _show(b: dict[str, int]) -> None:
    table(
        None,
        ["user", "available", "held", "spent", "refunded"],
        [[b["user_id"], b["available"], b["held"], b["spent"], b["refunded"]]],
    )


COMMANDS = [credits]
