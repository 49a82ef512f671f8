"""The bot's own settings, from the environment (the worker's, for the client, are its own).

- ``BOT_TOKEN``: the token @BotFather gave the bot (required; never logged).
- ``TELEGRAM_API_URL``: the Bot API's address, e.g. the simulator's ``http://127.0.0.1:8090``;
  unset: Telegram's own.
- ``BOT_WELCOME_CREDITS``: credits granted once to each new user (an idempotency key per user);
  0, the default, grants nothing.
- ``BOT_POLL_SECONDS``: how long one ``getUpdates`` waits for an update (long polling), 1–50.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(r"^\d+:[\w-]+$")


class BotConfigError(ValueError):
    """A bot setting is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class BotSettings:
    token: str = field(repr=False)
    api_url: str | None = None
    welcome_credits: int = 0
    poll_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if env is None else env
        token = env.get("BOT_TOKEN", "").strip()
        if not token:
            raise BotConfigError("BOT_TOKEN is not set: give the token @BotFather gave the bot")
        if not _TOKEN.match(token):
            raise BotConfigError("BOT_TOKEN is not a bot token (digits, a colon, then the secret)")
        api_url = env.get("TELEGRAM_API_URL", "").strip().rstrip("/") or None
        if api_url is not None and not api_url.startswith(("http://", "https://")):
            raise BotConfigError("TELEGRAM_API_URL must start with http:// or https://")
        return cls(
            token=token,
            api_url=api_url,
            welcome_credits=_int(env, "BOT_WELCOME_CREDITS", 0, 0, 1_000_000),
            poll_seconds=_int(env, "BOT_POLL_SECONDS", 30, 1, 50),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BotConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise BotConfigError(f"{name} must be from {low} to {high}")
    return value
