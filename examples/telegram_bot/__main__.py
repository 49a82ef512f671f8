"""``python -m examples.telegram_bot``: run the reference bot until Ctrl-C.

It reads ``BOT_TOKEN``, ``TELEGRAM_API_URL`` and ``BOT_WELCOME_CREDITS``
(``examples.telegram_bot.settings``), and the worker's own variables for its client
(``DATABASE_URL``, ``REDIS_URL``, ...). A wrong setting stops it with one sentence.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from examples.telegram_bot.bot import run
from examples.telegram_bot.settings import BotConfigError, BotSettings
from worker.client import AsyncClient
from worker.errors import ConfigError


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = BotSettings.from_env()
        client = AsyncClient.from_env()
    except (BotConfigError, ConfigError) as exc:
        print(f"telegram_bot: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(settings, client))
    finally:
        client.sync.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
