"""Lazily built settings, database and client for CLI commands (one per invocation)."""

from __future__ import annotations

from functools import cached_property

from worker.client import Client
from worker.config import Settings, load_settings
from worker.db import Database, connect


class CliContext:
    @cached_property
    def settings(self) -> Settings:
        return load_settings()

    @cached_property
    def db(self) -> Database:
        # One direct connection first: fails fast with PostgreSQL's own reason, where a pool
        # would retry quietly until its timeout.
        connect(self.settings.database_url).close()
        return Database(self.settings.database_url, min_size=1, max_size=2, name="cli").open()

    @cached_property
    def client(self) -> Client:
        return Client(self.settings, db=self.db)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
