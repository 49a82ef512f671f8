"""The one policy table: what a classified failure does to the key, the job, the user and the
operators. The step runtime asks :func:`decide` and does exactly what it says; nothing else in
the code base retries.

| class       | key              | job                                            | alert         |
|-------------|------------------|------------------------------------------------|---------------|
| USER_ERROR  | untouched        | fail now, refund                               | no            |
| TEMPORARY   | untouched        | full-jitter backoff, ≤ max attempts, then fail | on exhaustion |
| RATE_LIMIT  | cooldown         | wait and rotate; no attempt consumed           | no            |
| BILLING     | quarantined      | rotate; none left: wait to the deadline, fail  | at once       |
| AUTH        | quarantined      | as BILLING                                     | at once       |
| UNAVAILABLE | untouched        | fail now, refund                               | at once       |
| INTERNAL    | untouched        | as TEMPORARY                                   | on failure    |
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from tenacity import RetryCallState, wait_random_exponential

from worker.errors import ErrorClass


class Action(enum.Enum):
    RETRY = "retry"  # same step again after ``delay``; consumes an attempt
    WAIT = "wait"  # same step again after ``delay``; consumes nothing
    FAIL = "fail"  # terminal: fail the job and refund


@dataclass(frozen=True)
class Rule:
    cools_key: bool
    quarantines_key: bool
    action: Action
    alert: bool


RULES: dict[ErrorClass, Rule] = {
    ErrorClass.USER_ERROR: Rule(False, False, Action.FAIL, alert=False),
    ErrorClass.TEMPORARY: Rule(False, False, Action.RETRY, alert=False),
    ErrorClass.RATE_LIMIT: Rule(True, False, Action.WAIT, alert=False),
    ErrorClass.BILLING: Rule(False, True, Action.WAIT, alert=True),
    ErrorClass.AUTH: Rule(False, True, Action.WAIT, alert=True),
    ErrorClass.UNAVAILABLE: Rule(False, False, Action.FAIL, alert=True),
    ErrorClass.INTERNAL: Rule(False, False, Action.RETRY, alert=True),
}


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float
    attempts: int  # the step's attempt counter after this decision
    alert: bool
    reason: str


class Backoff:
    """Full-jitter exponential backoff (AWS's "full jitter"): uniform(0, min(cap, base·2^n)).

    Computed by tenacity's ``wait_random_exponential`` so the formula is the well-known one.
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self._wait = wait_random_exponential(multiplier=base, max=cap)
        self._rng = rng
        self.base = base
        self.cap = cap

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1 for the first retry)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempt)
        if self._rng is not None:  # deterministic in tests
            return self._rng.uniform(0, min(self.cap, self.base * 2 ** (state.attempt_number - 1)))
        return float(self._wait(state))


def decide(
    error_class: ErrorClass,
    *,
    attempts: int,
    max_attempts: int,
    backoff: Backoff,
    retry_after: float | None = None,
) -> Decision:
    """What to do after a failure of class ``error_class`` on a step that has used ``attempts``."""
    rule = RULES[error_class]
    if rule.action is Action.FAIL:
        return Decision(Action.FAIL, 0.0, attempts, rule.alert, f"{error_class} is not retried")
    if rule.action is Action.WAIT:
        # Rate limits wait what the provider asked (or a backoff); billing and auth rotate to
        # another key at once (the failed key is now quarantined, so it will not be picked).
        if error_class is ErrorClass.RATE_LIMIT:
            delay = retry_after if retry_after is not None else backoff.delay(1)
        else:
            delay = 0.0
        return Decision(Action.WAIT, delay, attempts, rule.alert, "no attempt consumed")
    used = attempts + 1
    if used >= max_attempts:
        return Decision(Action.FAIL, 0.0, used, True, f"gave up after {used} attempts")
    # Retries alert nobody; the failure they may end in does (once per job, not per attempt).
    return Decision(
        Action.RETRY, backoff.delay(used), used, False, f"attempt {used} of {max_attempts} failed"
    )
