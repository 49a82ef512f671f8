"""Providers' account balances, read by the maintenance leader, as Prometheus metrics.

A kind's :class:`worker.kinds.Provider` may declare ``balance(settings, key) -> float``: what the
key's account has left at the provider, in the provider's unit (credits, say). Every
:data:`INTERVAL_SECONDS` the maintenance leader reads it once per account (its first key: every
key of an account shares one balance), in a thread of its own so a slow provider never delays a
tick, and exports ``worker_provider_balance{provider,account,key}``. An alert on it warns before
an empty account quarantines its keys and jobs wait. A read that fails leaves the last figure in
place and counts ``worker_provider_balance_errors_total``; its age is
``worker_provider_balance_timestamp_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge

from worker.config import ApiKey, Settings
from worker.kinds import Provider, all_providers

log = logging.getLogger(__name__)

#: How often the leader reads the balances (each read is one free request per account).
INTERVAL_SECONDS = 300.0

BALANCE = Gauge(
    "worker_provider_balance",
    "What a provider account has left (in the provider's own unit), read by the "
    "maintenance leader; the key label is the key it was read with",
    ["provider", "account", "key"],
)
BALANCE_TIMESTAMP = Gauge(
    "worker_provider_balance_timestamp_seconds",
    "When the balance of a provider account was last read (Unix time)",
    ["provider", "account"],
)
BALANCE_ERRORS = Counter(
    "worker_provider_balance_errors_total",
    "Balance reads that failed (the last figure stays exported)",
    ["provider"],
)


def accounts(keys: Iterable[ApiKey]) -> list[ApiKey]:
    """One key per account: the first configured."""
    first: dict[str, ApiKey] = {}
    for key in keys:
        first.setdefault(key.account, key)
    return list(first.values())


class BalanceWatch:
    """The schedule of the balance reads in this process."""

    def __init__(
        self,
        settings: Settings,
        *,
        providers: Callable[[], list[Provider]] = all_providers,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.interval = interval
        self._clock = clock
        self._due = float("-inf")
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None

    def after_tick(self) -> threading.Thread | None:
        """Start the reads when they are due (and none is running). Returns their thread."""
        with self._lock:
            now = self._clock()
            if now < self._due or (self._running is not None and self._running.is_alive()):
                return None
            self._due = now + self.interval
            self._running = threading.Thread(target=self.run, name="balance-watch", daemon=True)
            self._running.start()
            return self._running

    def run(self) -> dict[tuple[str, str], float]:
        """Read every declared balance now and export it; returns what was read."""
        read: dict[tuple[str, str], float] = {}
        for provider in self.providers():
            if provider.balance is None:
                continue
            for key in accounts(provider.keys(self.settings)):
                try:
                    value = provider.balance(self.settings, key)
                except Exception as exc:  # a provider's failure must not stop the others
                    BALANCE_ERRORS.labels(provider=provider.name).inc()
                    log.warning(
                        "%s balance of account %s (key %s) could not be read: %s",
                        provider.label,
                        key.account,
                        key.name,
                        exc,
                    )
                    continue
                BALANCE.labels(provider=provider.name, account=key.account, key=key.name).set(value)
                BALANCE_TIMESTAMP.labels(
                    provider=provider.name, account=key.account
                ).set_to_current_time()
                read[(provider.name, key.account)] = value
        return read


_watches: dict[int, BalanceWatch] = {}
_watches_lock = threading.Lock()


def after_tick(settings: Settings) -> None:
    """The maintenance leader's hook (one line in :mod:`worker.maintenance`)."""
    with _watches_lock:
        watch = _watches.get(id(settings))
        if watch is None or watch.settings is not settings:
            watch = _watches[id(settings)] = BalanceWatch(settings)
    watch.after_tick()
