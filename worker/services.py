"""Everything a step may use, built once per worker process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from worker.config import Settings
from worker.db import Database
from worker.dispatch import Dispatcher
from worker.keys import KeyPool
from worker.notifications import Notifications
from worker.policy import Backoff
from worker.storage import Storage
from worker.telegram import TelegramNotifier

T = TypeVar("T")


class Services:
    """Everything a step may use, built once per worker process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        keys: KeyPool,
        dispatcher: Dispatcher,
        telegram: TelegramNotifier | None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.keys = keys
        self.dispatcher = dispatcher
        self.telegram = telegram
        self.storage = Storage.from_settings(settings)
        self.backoff = Backoff(settings.backoff_base_seconds, settings.backoff_max_seconds)
        self.notifications = Notifications(db, telegram, dispatcher, self.backoff, settings)
        self._extensions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def extension(self, name: str, factory: Callable[[Settings], T]) -> T:
        """A per-process object a job kind needs (e.g. its provider client), built once."""
        with self._lock:
            if name not in self._extensions:
                self._extensions[name] = factory(self.settings)
            return self._extensions[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        for ext in self._extensions.values():
            close = getattr(ext, "close", None)
            if callable(close):
                close()
        if self.telegram is not None:
            self.telegram.close()
        self.storage.close()
