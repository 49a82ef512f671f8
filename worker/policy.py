"""The one policy table: what a classified failure does to the key, the job (or the user
message), the user and the operators.

:func:`decide` reads :data:`RULES` and returns a :class:`Decision`; the step runtime, the key
pool (:meth:`worker.keys.KeyPool.report_failure`) and the notification sender do what it says
and decide nothing themselves. Nothing else in the code base retries.

| class       | key         | job                            | user             | operators     |
|-------------|-------------|--------------------------------|------------------|---------------|
| USER_ERROR  | untouched   | fail now, refund               | told why         | no            |
| TEMPORARY   | untouched   | backoff, ≤ max attempts, fail  | final message    | on exhaustion |
| RATE_LIMIT  | cooldown    | wait and rotate; no attempt    | nothing          | if sustained  |
| BILLING     | quarantined | rotate; none left: wait†, fail | none until final | at once       |
| AUTH        | quarantined | as BILLING                     | none until final | at once       |
| UNAVAILABLE | untouched   | next resource; none: wait*     | "unavailable"    | at once       |
| INTERNAL    | untouched   | as TEMPORARY                   | final message    | on exhaustion |

Backoff is full jitter; † waits are bounded by the job's deadline.

* The step moves to the next resource it may use (e.g. the next model of a chain; see
``worker.models``) itself, using no attempt. When none is left it raises UNAVAILABLE with
``retry_after`` (when to look again) and the job waits, to its deadline; UNAVAILABLE without
``retry_after`` (nothing to wait for) fails now and refunds.

A user message (a notification) follows the same table with nothing to rotate to: a rate limit
waits, an outage retries up to its own attempt limit, anything else gives the message up.
"If sustained" is for the metrics' alert rules (``worker_provider_errors_total``), not one
failure.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from worker.errors import ErrorClass


class Action(enum.StrEnum):
    """What happens to the job (or the user message)."""

    RETRY = "retry"  # same step again after ``delay``; consumes an attempt
    WAIT = "wait"  # same step again after ``delay``; consumes nothing
    FAIL = "fail"  # terminal: fail the job and refund (a message: give it up)


class KeyAction(enum.StrEnum):
    UNTOUCHED = "untouched"
    COOLDOWN = "cooldown"  # for Retry-After (or a backoff), extend-only
    QUARANTINE = "quarantine"  # until an operator re-enables it


class UserNotice(enum.StrEnum):
    TOLD_WHY = "told why, in plain words"
    FINAL_MESSAGE = "one final message"
    NOTHING = "nothing"
    NOTHING_UNTIL_FINAL = "nothing until final"
    UNAVAILABLE = "temporarily unavailable"


class Alert(enum.StrEnum):
    NEVER = "no"
    ON_EXHAUSTION = "on exhaustion"
    IF_SUSTAINED = "if sustained"
    AT_ONCE = "at once"


@dataclass(frozen=True)
class Rule:
    key: KeyAction
    job: Action
    user: UserNotice
    operators: Alert


RULES: dict[ErrorClass, Rule] = {
    ErrorClass.USER_ERROR: Rule(KeyAction.UNTOUCHED, Action.FAIL, UserNotice.TOLD_WHY, Alert.NEVER),
    ErrorClass.TEMPORARY: Rule(
        KeyAction.UNTOUCHED, Action.RETRY, UserNotice.FINAL_MESSAGE, Alert.ON_EXHAUSTION
    ),
    ErrorClass.RATE_LIMIT: Rule(
        KeyAction.COOLDOWN, Action.WAIT, UserNotice.NOTHING, Alert.IF_SUSTAINED
    ),
    ErrorClass.BILLING: Rule(
        KeyAction.QUARANTINE, Action.WAIT, UserNotice.NOTHING_UNTIL_FINAL, Alert.AT_ONCE
    ),
    ErrorClass.AUTH: Rule(
        KeyAction.QUARANTINE, Action.WAIT, UserNotice.NOTHING_UNTIL_FINAL, Alert.AT_ONCE
    ),
    ErrorClass.UNAVAILABLE: Rule(
        KeyAction.UNTOUCHED, Action.WAIT, UserNotice.UNAVAILABLE, Alert.AT_ONCE
    ),
    ErrorClass.INTERNAL: Rule(
        KeyAction.UNTOUCHED, Action.RETRY, UserNotice.FINAL_MESSAGE, Alert.ON_EXHAUSTION
    ),
}


@dataclass(frozen=True)
class KeyFate:
    """What happens to the key that failed: ``seconds`` is the cooldown (COOLDOWN only)."""

    action: KeyAction
    seconds: float = 0.0


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float  # seconds before the job (or message) runs again; 0 for FAIL
    attempts: int  # the attempt counter after this decision
    key: KeyFate
    user: UserNotice
    alert: bool  # tell the operators now
    reason: str


class Backoff:
    """Full-jitter exponential backoff (AWS's "full jitter"): uniform(0, min(cap, base·2^(n-1)))
    before retry number n."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest delay before retry number ``attempt`` (1 for the first retry)."""
        exponent = max(1, attempt) - 1
        if exponent >= 64:  # 2**64 times any base is past any cap
            return self.cap
        return min(self.cap, self.base * float(2**exponent))

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1 for the first retry)."""
        return float(self._rng.uniform(0, self.ceiling(attempt)))


def key_fate(error_class: ErrorClass, retry_after: float | None, backoff: float) -> KeyFate:
    """The key column of the table: a cooldown for what the provider asked (``retry_after``),
    else ``backoff`` seconds."""
    action = RULES[error_class].key
    if action is not KeyAction.COOLDOWN:
        return KeyFate(action)
    wait = retry_after if retry_after is not None and math.isfinite(retry_after) else backoff
    return KeyFate(action, max(0.0, float(wait)))


def decide(
    error_class: ErrorClass,
    *,
    attempts: int,
    max_attempts: int,
    backoff: Backoff,
    retry_after: float | None = None,
    rotates: bool = True,
) -> Decision:
    """What to do after a failure of class ``error_class`` on a step (or a message) that had
    used ``attempts`` before it. ``rotates``: another key can take over (a user message has
    only the bot's token, so billing and auth failures give it up)."""
    rule = RULES[error_class]
    key = KeyFate(rule.key)
    if rule.key is KeyAction.COOLDOWN:
        asked = retry_after is not None and math.isfinite(retry_after)
        key = key_fate(error_class, retry_after, 0.0 if asked else backoff.delay(attempts + 1))
    action = rule.job
    if action is Action.WAIT and not rotates and rule.key is KeyAction.QUARANTINE:
        action = Action.FAIL
    waits_for = retry_after if retry_after is not None and math.isfinite(retry_after) else None
    if error_class is ErrorClass.UNAVAILABLE and (waits_for is None or not rotates):
        action = Action.FAIL  # nothing says when to look again: fail now
    if action is Action.FAIL:
        return Decision(
            Action.FAIL,
            0.0,
            attempts,
            key,
            rule.user,
            rule.operators is Alert.AT_ONCE,
            f"{error_class} is not retried",
        )
    if action is Action.WAIT:
        # Rate limits wait what the provider asked (or a backoff); billing and auth rotate to
        # another key at once (the failed key is now quarantined, so it will not be picked).
        delay = key.seconds if rule.key is KeyAction.COOLDOWN else 0.0
        if error_class is ErrorClass.UNAVAILABLE and waits_for is not None:
            delay = max(0.0, waits_for)  # when the step said a resource may be back
        alert = rule.operators is Alert.AT_ONCE
        return Decision(Action.WAIT, delay, attempts, key, rule.user, alert, "no attempt consumed")
    used = attempts + 1
    if used >= max_attempts:
        # Retries alert nobody; the failure they end in does (once per job, not per attempt).
        alert = rule.operators in (Alert.ON_EXHAUSTION, Alert.AT_ONCE)
        return Decision(
            Action.FAIL, 0.0, used, key, rule.user, alert, f"gave up after {used} attempts"
        )
    return Decision(
        Action.RETRY,
        backoff.delay(used),
        used,
        key,
        rule.user,
        False,
        f"attempt {used} of {max_attempts} failed",
    )
