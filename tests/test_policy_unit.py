"""The policy table and the outcome mapping, without services: every row of the table, what a
step handler's outcome becomes, how a failure ends a job, and the enums the schema checks."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from worker.errors import ErrorClass, ProviderError
from worker.events import EventCode
from worker.lifecycle import Change, deadline_error, failure
from worker.notifications import MAX_SEND_ATTEMPTS, Notifications
from worker.outcomes import Again, Next, Plan
from worker.policy import (
    RULES,
    Action,
    Alert,
    Backoff,
    KeyAction,
    KeyFate,
    UserNotice,
    decide,
    key_fate,
)
from worker.status import JobStatus, NotificationStatus, StepOutcome

pytestmark = pytest.mark.unit

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BACKOFF = Backoff(1.0, 30.0, rng=random.Random(7))

# --- the table, row by row (the design's table) -----------------------------------------------

TABLE = [
    # class, key, job, user, operators
    (
        ErrorClass.USER_ERROR,
        KeyAction.UNTOUCHED,
        Action.FAIL,
        UserNotice.TOLD_WHY,
        Alert.NEVER,
    ),
    (
        ErrorClass.TEMPORARY,
        KeyAction.UNTOUCHED,
        Action.RETRY,
        UserNotice.FINAL_MESSAGE,
        Alert.ON_EXHAUSTION,
    ),
    (
        ErrorClass.RATE_LIMIT,
        KeyAction.COOLDOWN,
        Action.WAIT,
        UserNotice.NOTHING,
        Alert.IF_SUSTAINED,
    ),
    (
        ErrorClass.BILLING,
        KeyAction.QUARANTINE,
        Action.WAIT,
        UserNotice.NOTHING_UNTIL_FINAL,
        Alert.AT_ONCE,
    ),
    (
        ErrorClass.AUTH,
        KeyAction.QUARANTINE,
        Action.WAIT,
        UserNotice.NOTHING_UNTIL_FINAL,
        Alert.AT_ONCE,
    ),
    (
        ErrorClass.UNAVAILABLE,
        KeyAction.UNTOUCHED,
        Action.WAIT,  # with retry_after; without, it fails now (tests/video)
        UserNotice.UNAVAILABLE,
        Alert.AT_ONCE,
    ),
    (
        ErrorClass.INTERNAL,
        KeyAction.UNTOUCHED,
        Action.RETRY,
        UserNotice.FINAL_MESSAGE,
        Alert.ON_EXHAUSTION,
    ),
]


def test_the_table_has_one_row_per_class() -> None:
    assert {row[0] for row in TABLE} == set(ErrorClass) == set(RULES)


@pytest.mark.parametrize(("cls", "key", "job", "user", "operators"), TABLE)
def test_each_row(
    cls: ErrorClass, key: KeyAction, job: Action, user: UserNotice, operators: Alert
) -> None:
    rule = RULES[cls]
    assert (rule.key, rule.job, rule.user, rule.operators) == (key, job, user, operators)
    d = decide(cls, attempts=0, max_attempts=3, backoff=BACKOFF, retry_after=12.0)
    assert (d.key.action, d.action, d.user) == (key, job, user)
    assert d.alert is (operators is Alert.AT_ONCE)
    if job is Action.FAIL:
        assert (d.delay, d.attempts) == (0.0, 0)
    elif job is Action.WAIT:
        assert d.attempts == 0  # no attempt consumed
        waits = key is KeyAction.COOLDOWN or cls is ErrorClass.UNAVAILABLE
        assert d.delay == (12.0 if waits else 0.0)  # else rotate at once
    else:
        assert d.attempts == 1 and 0.0 <= d.delay <= BACKOFF.ceiling(1)


@pytest.mark.parametrize("cls", [ErrorClass.TEMPORARY, ErrorClass.INTERNAL])
def test_retries_end_in_a_failure_that_alerts(cls: ErrorClass) -> None:
    second = decide(cls, attempts=1, max_attempts=3, backoff=BACKOFF)
    assert (second.action, second.attempts, second.alert) == (Action.RETRY, 2, False)
    assert second.reason == "attempt 2 of 3 failed"
    last = decide(cls, attempts=2, max_attempts=3, backoff=BACKOFF)
    assert (last.action, last.attempts, last.alert, last.delay) == (Action.FAIL, 3, True, 0.0)
    assert last.reason == "gave up after 3 attempts"


def test_a_rate_limit_cools_the_key_for_what_the_provider_asked_else_a_backoff() -> None:
    asked = decide(
        ErrorClass.RATE_LIMIT, attempts=0, max_attempts=3, backoff=BACKOFF, retry_after=9
    )
    assert asked.key == KeyFate(KeyAction.COOLDOWN, 9.0) and asked.delay == 9.0
    guessed = decide(ErrorClass.RATE_LIMIT, attempts=0, max_attempts=3, backoff=BACKOFF)
    assert guessed.key.action is KeyAction.COOLDOWN
    assert guessed.delay == guessed.key.seconds and 0.0 <= guessed.delay <= BACKOFF.ceiling(1)
    endless = decide(
        ErrorClass.RATE_LIMIT,
        attempts=0,
        max_attempts=3,
        backoff=BACKOFF,
        retry_after=float("inf"),
    )
    assert endless.key.seconds <= BACKOFF.ceiling(1)  # an infinite wait never cools a key


@pytest.mark.parametrize(
    ("cls", "retry_after", "fate"),
    [
        (ErrorClass.RATE_LIMIT, 4.0, KeyFate(KeyAction.COOLDOWN, 4.0)),
        (ErrorClass.RATE_LIMIT, None, KeyFate(KeyAction.COOLDOWN, 7.5)),
        (ErrorClass.RATE_LIMIT, float("nan"), KeyFate(KeyAction.COOLDOWN, 7.5)),
        (ErrorClass.RATE_LIMIT, -3.0, KeyFate(KeyAction.COOLDOWN, 0.0)),
        (ErrorClass.AUTH, 4.0, KeyFate(KeyAction.QUARANTINE)),
        (ErrorClass.BILLING, None, KeyFate(KeyAction.QUARANTINE)),
        (ErrorClass.TEMPORARY, 4.0, KeyFate(KeyAction.UNTOUCHED)),
        (ErrorClass.USER_ERROR, None, KeyFate(KeyAction.UNTOUCHED)),
    ],
)
def test_key_fate(cls: ErrorClass, retry_after: float | None, fate: KeyFate) -> None:
    assert key_fate(cls, retry_after, 7.5) == fate


def test_full_jitter_backoff_stays_under_its_exponential_ceiling() -> None:
    b = Backoff(0.5, 10.0, rng=random.Random(1))
    assert [b.ceiling(n) for n in (0, 1, 2, 3, 5, 6, 1000)] == [0.5, 0.5, 1.0, 2.0, 8.0, 10.0, 10.0]
    for attempt in range(1, 8):
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= b.ceiling(attempt) for d in delays)
        assert max(delays) > b.ceiling(attempt) / 2  # jittered over the whole range
    one, two = Backoff(0.5, 10.0, rng=random.Random(3)), Backoff(0.5, 10.0, rng=random.Random(3))
    assert [one.delay(n) for n in range(1, 6)] == [two.delay(n) for n in range(1, 6)]


# --- a user message: the same table, nothing to rotate to -------------------------------------


def _classify(err: ProviderError, attempts: int) -> tuple[NotificationStatus, float]:
    notes = Notifications(cast(Any, None), None, cast(Any, None), Backoff(1.0, 4.0))
    result = notes._classify(err, attempts)
    return result.status, result.delay


def _err(cls: ErrorClass, **kw: Any) -> ProviderError:
    return ProviderError(cls, "boom", provider="telegram", **kw)


@pytest.mark.parametrize(
    ("cls", "attempts", "status"),
    [
        (ErrorClass.RATE_LIMIT, 1, NotificationStatus.RETRY),
        (ErrorClass.RATE_LIMIT, 50, NotificationStatus.RETRY),  # waits consume nothing
        (ErrorClass.TEMPORARY, 1, NotificationStatus.RETRY),
        (ErrorClass.TEMPORARY, MAX_SEND_ATTEMPTS - 1, NotificationStatus.RETRY),
        (ErrorClass.TEMPORARY, MAX_SEND_ATTEMPTS, NotificationStatus.UNDELIVERABLE),
        (ErrorClass.INTERNAL, MAX_SEND_ATTEMPTS, NotificationStatus.UNDELIVERABLE),
        (ErrorClass.AUTH, 1, NotificationStatus.UNDELIVERABLE),  # no other bot token
        (ErrorClass.BILLING, 1, NotificationStatus.UNDELIVERABLE),
        (ErrorClass.USER_ERROR, 1, NotificationStatus.UNDELIVERABLE),
        (ErrorClass.UNAVAILABLE, 1, NotificationStatus.UNDELIVERABLE),
    ],
)
def test_a_message_follows_the_table(
    cls: ErrorClass, attempts: int, status: NotificationStatus
) -> None:
    got, delay = _classify(_err(cls), attempts)
    assert got is status
    assert delay >= 0.0 and (delay == 0.0 or status is NotificationStatus.RETRY)


def test_a_blocked_user_or_a_missing_chat_is_final_for_the_message() -> None:
    err = _err(ErrorClass.USER_ERROR, permanent_for_notification=True)
    assert _classify(err, 1) == (NotificationStatus.UNDELIVERABLE, 0.0)
    blocked = _err(ErrorClass.RATE_LIMIT, permanent_for_notification=True)
    assert _classify(blocked, 1)[0] is NotificationStatus.UNDELIVERABLE


def test_a_rate_limited_message_waits_what_telegram_asked() -> None:
    assert _classify(_err(ErrorClass.RATE_LIMIT, retry_after=3.0), 2) == (
        NotificationStatus.RETRY,
        3.0,
    )


# --- what a handler's outcome becomes ---------------------------------------------------------


def test_a_next_is_a_plan_for_another_step_with_fresh_attempts_and_its_task() -> None:
    nxt = Next("poll", "task created", "t1", delay=2.0, provider_task_id="t1", key_name="k1")
    plan = Plan.of(nxt, attempts=2)
    assert (plan.outcome, plan.step, plan.delay, plan.attempts) == (StepOutcome.NEXT, "poll", 2, 0)
    assert plan.change == Change(
        provider_task_id="t1", key_name="k1", event="task created", detail="t1"
    )
    assert Plan.of(Next("poll", "", clear_task=True), 0).change == Change(clear_task=True)


def test_an_again_is_the_same_step_with_its_attempts_and_no_event_unless_named() -> None:
    quiet = Plan.of(Again(5.0, state={"polls": 3}), attempts=1)
    assert (quiet.outcome, quiet.step, quiet.attempts) == (StepOutcome.AGAIN, None, 1)
    assert quiet.change == Change(state={"polls": 3})  # no event: the timeline stays short
    loud = Plan.of(Again(5.0, event="provider state", detail="generating"), attempts=0)
    assert (loud.change.event, loud.change.detail) == ("provider state", "generating")


def test_a_failure_ends_the_job_with_its_refund_and_the_users_message() -> None:
    err = ProviderError(
        ErrorClass.USER_ERROR, "content policy", provider="kie", user_message="Not allowed."
    )
    ending = failure(err, price=3, notify_text="Sorry", data={"by": "test"})
    assert ending.status is JobStatus.FAILED and ending.code is EventCode.FAILED
    assert ending.detail == "USER_ERROR from kie: content policy; 3 credit(s) refunded"
    assert (ending.error_class, ending.error, ending.user_error) == (
        ErrorClass.USER_ERROR,
        "content policy",
        "Not allowed.",
    )
    assert (ending.notify_kind, ending.notify_text, ending.data) == (
        "failure",
        "Sorry",
        {"by": "test"},
    )
    free = failure(err, price=0, notify_text=None)
    assert free.detail == "USER_ERROR from kie: content policy" and free.notify_kind is None


def test_the_deadline_is_worded_once_and_keeps_the_last_error() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    err = deadline_error(created, created + timedelta(minutes=30), ErrorClass.BILLING, "no money")
    assert err.error_class is ErrorClass.BILLING
    assert err.message == (
        "took too long: not finished within its deadline of 30 min (last error: BILLING: no money)"
    )
    assert err.user_message == "This took too long to make, so we stopped."
    plain = deadline_error(created, created + timedelta(minutes=5), None, None)
    assert plain.error_class is ErrorClass.TEMPORARY
    assert plain.message == "took too long: not finished within its deadline of 5 min"


# --- enums the schema checks ------------------------------------------------------------------


def _check_values(table: str, column: str) -> set[str]:
    sql = (MIGRATIONS / "0001_initial.sql").read_text()
    body = sql[sql.index(f"CREATE TABLE {table} (") :]
    found = re.search(rf"\b{column}\b[^,]*?CHECK \({column} IN \(([^)]*)\)\)", body, re.S)
    assert found is not None, f"no CHECK on {table}.{column}"
    return set(re.findall(r"'([^']+)'", found.group(1)))


def test_job_status_is_the_schemas() -> None:
    assert _check_values("jobs", "status") == {str(s) for s in JobStatus}
    assert {s for s in JobStatus if s.terminal} == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


def test_notification_status_is_the_schemas() -> None:
    stored = {str(s) for s in NotificationStatus} - {str(NotificationStatus.SKIPPED)}
    assert _check_values("notifications", "status") == stored


def test_error_class_is_the_schemas() -> None:
    assert _check_values("jobs", "error_class") == {str(c) for c in ErrorClass}


def test_event_codes_fit_the_schemas_format() -> None:
    sql = (MIGRATIONS / "0005_end_job.sql").read_text()
    pattern = re.search(r"CHECK \(code ~ '([^']+)'\)", sql)
    assert pattern is not None
    for code in EventCode:
        assert re.fullmatch(pattern.group(1), str(code)), code
    assert EventCode.of_message("undeliverable") is EventCode.MESSAGE_UNDELIVERABLE
