"""The reference bot against the simulator's Telegram, with the pipeline's real workers.

``RunningBot`` runs the bot's own polling loop (``examples.telegram_bot``) on an event loop of
its own in a thread: it long-polls the simulator for what the test's simulated users send, and
submits through a real ``AsyncClient`` on the test's database and Redis. Every log line the bot
(and aiogram) writes meanwhile is kept, so a test can look for the token in them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from examples.telegram_bot.bot import build_dispatcher, make_bot
from examples.telegram_bot.settings import BotSettings
from tests.pipeline.conftest import BOT_TOKEN, Pipeline, pipeline, sim, wait_for
from worker.client import AsyncClient, Client

__all__ = ["RunningBot", "pipeline", "sim"]

#: A short long poll: stopping the bot cancels it anyway; a failed one is retried sooner.
POLL_SECONDS = 5


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if record.exc_info:
            line += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(line)


class RunningBot:
    def __init__(self, pipeline: Pipeline, welcome_credits: int = 0) -> None:
        self.settings = BotSettings(
            token=BOT_TOKEN,
            api_url=pipeline.sim.telegram_url,
            welcome_credits=welcome_credits,
            poll_seconds=POLL_SECONDS,
        )
        self.client = Client(pipeline.settings, db=pipeline.db)
        self.dispatcher = build_dispatcher(AsyncClient(self.client), self.settings)
        self.bot = make_bot(self.settings)
        self.loop = asyncio.new_event_loop()
        self.logs = _Lines()
        self._thread = threading.Thread(target=self._run, name="reference-bot", daemon=True)
        self._sim = pipeline.sim
        self._levels: dict[str, int] = {}

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(
                self.dispatcher.start_polling(
                    self.bot, polling_timeout=POLL_SECONDS, handle_signals=False
                )
            )
        finally:  # stop_polling itself, and any update still being handled
            rest = asyncio.all_tasks(self.loop)
            self.loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))

    def start(self) -> RunningBot:
        for name in ("aiogram", "examples"):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self.logs)
        self._thread.start()
        wait_for(
            lambda: self._sim.calls(service="telegram", endpoint="getUpdates"),
            10,
            "the bot's first getUpdates",
        )
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.dispatcher.stop_polling(), self.loop)
            self._thread.join(10)
            assert not self._thread.is_alive(), "the bot did not stop"
        self.loop.close()
        self.client.close()
        for name, level in self._levels.items():
            logging.getLogger(name).removeHandler(self.logs)
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def running_bot(pipeline: Pipeline) -> Iterator[RunningBot]:
    running = RunningBot(pipeline).start()
    yield running
    running.stop()
