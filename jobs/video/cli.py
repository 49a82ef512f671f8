"""`worker submit`: submit a video job from the shell, exactly as the bot would.

The video kind's command (``JobKind.cli_module``), added to `worker` by :mod:`worker.cli.main`.
"""

from __future__ import annotations

import click

from worker.cli.context import CliContext
from worker.cli.output import submit_result


@click.command("submit")
@click.option("--user", "user_id", type=int, required=True, help="Telegram user id (pays).")
@click.option("--chat", "chat_id", type=int, help="Chat to deliver to (default: the user).")
@click.option("--image-url", required=True, help="Public http(s) URL of the product photo.")
@click.option("--title", required=True, help="Product title (1–200 characters).")
@click.option("--description", help="Product description (up to 2,000 characters).")
@click.option("--count", type=int, default=1, show_default=True, help="Number of videos.")
@click.option("--idempotency-key", help="Same key + same request returns the first result.")
@click.option("--tier", help="The tier sold (its price and models); default: the default tier.")
@click.option(
    "--language",
    help="The user's language, as Telegram's language_code (en, ru, uk, en-US): every text "
    "about the videos is in it (default: DEFAULT_LANGUAGE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def submit(
    obj: CliContext,
    user_id: int,
    chat_id: int | None,
    image_url: str,
    title: str,
    description: str | None,
    count: int,
    idempotency_key: str | None,
    tier: str | None,
    language: str | None,
    as_json: bool,
) -> None:
    """Submit COUNT videos of one product for USER, holding their credits."""
    product = {"title": title, "image_url": image_url}
    if description is not None:
        product["description"] = description
    result = obj.client.submit_video(
        user_id=user_id,
        chat_id=chat_id,
        product=product,
        count=count,
        idempotency_key=idempotency_key,
        tier=tier,
        language=language,
    )
    submit_result(result, as_json)


COMMANDS = [submit]
