"""Riding out a short database outage (a PostgreSQL restart, a failover) in the step runtime."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import psycopg
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

log = logging.getLogger(__name__)

T = TypeVar("T")


def with_db_retry(fn: Callable[[], T], seconds: float = 30.0) -> T:
    """Retry a database write through a short outage (PostgreSQL restart, failover).

    A step that already created a provider task must not lose the task id to a blip. The
    first try is a plain call: building the retry machinery costs more than most writes."""
    try:
        return fn()
    except psycopg.OperationalError as exc:
        log.warning("database write failed (%s); retrying for up to %.0f s", exc, seconds)
    for attempt in Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        stop=stop_after_delay(seconds),
        wait=wait_random_exponential(multiplier=0.2, max=3.0),
        reraise=True,
    ):
        with attempt:
            return fn()
    raise AssertionError("unreachable")  # pragma: no cover
