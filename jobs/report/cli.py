"""`worker report`: submit a sales report of a CSV export from the shell, as the bot would.

The report kind's command (``JobKind.cli_module``), added to `worker` by :mod:`worker.cli.main`.
"""

from __future__ import annotations

import click

from jobs.report import DEFAULT_PERIOD, PERIOD_CHOICES
from worker.cli.context import CliContext
from worker.cli.output import submit_result


@click.command("report")
@click.option("--user", "user_id", type=int, required=True, help="Telegram user id (pays).")
@click.option("--chat", "chat_id", type=int, help="Chat to deliver to (default: the user).")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(path_type=str),
    help="The sales export (CSV, comma or semicolon, UTF-8 or cp1251).",
)
@click.option(
    "--period",
    type=click.Choice(PERIOD_CHOICES, case_sensitive=False),
    default=DEFAULT_PERIOD,
    show_default=True,
    help="Days counted back from the newest sale in the file, or all.",
)
@click.option("--content-type", help="Only sales of this content type (e.g. photo, video).")
@click.option("--idempotency-key", help="Same key + same request returns the first result.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def report(
    obj: CliContext,
    user_id: int,
    chat_id: int | None,
    csv_path: str,
    period: str,
    content_type: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Submit an analytics report of a CSV sales export for USER, holding its credits."""
    result = obj.client.submit_report(
        user_id,
        chat_id,
        csv_path,
        period=period.lower(),
        content_type=content_type,
        idempotency_key=idempotency_key,
    )
    submit_result(result, as_json)


COMMANDS = [report]
