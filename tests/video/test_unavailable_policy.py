"""The policy's UNAVAILABLE row: a step that says when to look again (every model of a chain
paused) waits, using no attempt; one that cannot say fails now and refunds."""

from __future__ import annotations

import random

import pytest

from worker.errors import ErrorClass
from worker.policy import Action, Backoff, decide

pytestmark = pytest.mark.unit

BACKOFF = Backoff(1.0, 10.0, random.Random(1))


def test_unavailable_with_retry_after_waits_without_an_attempt() -> None:
    d = decide(ErrorClass.UNAVAILABLE, attempts=1, max_attempts=3, backoff=BACKOFF, retry_after=42)
    assert (d.action, d.delay, d.attempts, d.alert) == (Action.WAIT, 42.0, 1, True)


@pytest.mark.parametrize("retry_after", [None, float("nan"), float("inf")])
def test_unavailable_without_a_time_fails_now(retry_after: float | None) -> None:
    d = decide(
        ErrorClass.UNAVAILABLE,
        attempts=0,
        max_attempts=3,
        backoff=BACKOFF,
        retry_after=retry_after,
    )
    assert (d.action, d.delay, d.attempts) == (Action.FAIL, 0.0, 0)


def test_a_message_never_waits_for_a_model() -> None:
    d = decide(
        ErrorClass.UNAVAILABLE,
        attempts=0,
        max_attempts=3,
        backoff=BACKOFF,
        retry_after=5,
        rotates=False,
    )
    assert d.action is Action.FAIL
