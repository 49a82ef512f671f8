"""Failure classes: every provider failure is classified once, here, into one of seven classes.

The class decides what happens to the key, the job, the user and the operators (see
``worker.policy`` for the table). Clients raise :class:`ProviderError`; nothing else in the
code base inspects HTTP statuses or vendor error codes.
"""

from __future__ import annotations

import enum


class ErrorClass(enum.StrEnum):
    USER_ERROR = "USER_ERROR"
    TEMPORARY = "TEMPORARY"
    RATE_LIMIT = "RATE_LIMIT"
    BILLING = "BILLING"
    AUTH = "AUTH"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


#: What the user reads when a job ends in this class and the provider gave nothing better.
DEFAULT_USER_MESSAGES: dict[ErrorClass, str] = {
    ErrorClass.USER_ERROR: "We could not make it from your request.",
    ErrorClass.TEMPORARY: "The service we use had a problem and we could not finish.",
    ErrorClass.RATE_LIMIT: "The service we use is very busy right now.",
    ErrorClass.BILLING: "The service we use is temporarily unavailable.",
    ErrorClass.AUTH: "The service we use is temporarily unavailable.",
    ErrorClass.UNAVAILABLE: "This service is temporarily unavailable.",
    ErrorClass.INTERNAL: "Something went wrong on our side.",
}


class ProviderError(Exception):
    """A classified failure of one exchange with an external provider.

    ``message`` is for operators (already free of secrets); ``user_message`` is short and fit to
    show the user; ``retry_after`` is the wait the provider asked for, in seconds, if it said.
    ``outcome_unknown`` says the request may have reached the provider and done its work (a
    read timeout, a connection dropped mid-answer): for a paid or user-visible request,
    repeating it may do it twice. False when it surely did not (a refused connection) or the
    provider answered.
    """

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        user_message: str | None = None,
        retry_after: float | None = None,
        key_name: str | None = None,
        permanent_for_notification: bool = False,
        outcome_unknown: bool = False,
    ) -> None:
        from worker.redaction import redact

        self.error_class = error_class
        self.provider = provider
        self.status = status
        self.code = code
        self.message = redact(message)
        self.user_message = user_message or DEFAULT_USER_MESSAGES[error_class]
        self.retry_after = retry_after
        self.key_name = key_name
        self.permanent_for_notification = permanent_for_notification
        self.outcome_unknown = outcome_unknown
        super().__init__(self.message)

    def __str__(self) -> str:
        where = self.provider
        if self.status is not None:
            where += f" HTTP {self.status}"
        if self.code not in (None, "", str(self.status)):
            where += f" code {self.code}"
        return f"{self.error_class} from {where}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.error_class!s}, provider={self.provider!r}, "
            f"status={self.status!r}, code={self.code!r}, message={self.message!r}, "
            f"retry_after={self.retry_after!r}, key_name={self.key_name!r}, "
            f"outcome_unknown={self.outcome_unknown!r})"
        )


class WorkerError(Exception):
    """Base of the errors this package raises on purpose (refusals, configuration, ledger)."""


class ConfigError(WorkerError):
    """A configuration value is missing or malformed. The message names the variable."""


class NoKeyAvailable(WorkerError):
    """No key of a provider can serve now.

    ``retry_at`` is the epoch time when one can (a cooldown or a pacing window ends), or ``None``
    when every key is quarantined or disabled and only an operator can help.
    """

    def __init__(self, provider: str, retry_at: float | None, reason: str) -> None:
        self.provider = provider
        self.retry_at = retry_at
        self.reason = reason
        super().__init__(f"no {provider} key can serve now: {reason}")


class RequestRefused(WorkerError):
    """A request was refused and nothing changed (the CLI exits 1)."""


class InvalidRequest(RequestRefused, ValueError):
    """A field of a request is missing or malformed. ``field`` names it; ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field} {reason}")


class InsufficientCredits(RequestRefused):
    """The user's available credits do not cover the request."""

    def __init__(self, user_id: int, needed: int, available: int) -> None:
        self.user_id = user_id
        self.needed = needed
        self.available = available
        super().__init__(
            f"user {user_id} needs {needed} credit{'s' if needed != 1 else ''} "
            f"but has {available} available"
        )


class Busy(RequestRefused):
    """The request's estimated wait for the kind's bottleneck (e.g. a provider's create slot) is
    longer than the admission limit (``ADMISSION_MAX_WAIT_SECONDS``; by default the deadline
    less the typical time after it): refused before anything is written (no request, hold, job
    or message). ``eta_seconds`` is the estimate to the last result; ``max_wait_seconds`` the
    limit the wait (``wait_seconds``) exceeds."""

    def __init__(
        self,
        kind: str,
        eta_seconds: float,
        max_wait_seconds: float,
        *,
        wait_seconds: float | None = None,
    ) -> None:
        self.kind = kind
        self.eta_seconds = eta_seconds
        self.max_wait_seconds = max_wait_seconds
        self.wait_seconds = eta_seconds if wait_seconds is None else wait_seconds
        super().__init__(
            f"{kind} is busy: the estimated wait is {self.wait_seconds:.0f} s, longer than the "
            f"{max_wait_seconds:.0f} s allowed (the result would take about {eta_seconds:.0f} s); "
            "try again later"
        )


class UnknownJob(RequestRefused, LookupError):
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"there is no job {job_id}")


class NotYourJob(UnknownJob):
    """The job exists but is not ``user_id``'s (the ownership guard of ``Client.job``, ``clone``,
    ``retry`` and ``cancel``). An :class:`UnknownJob`, with the same kind of message, so a bot
    answers both alike and a forged id learns nothing."""

    def __init__(self, job_id: int, user_id: int) -> None:
        super().__init__(job_id)
        self.user_id = user_id
        self.args = (f"there is no job {job_id} of user {user_id}",)


class JobStateConflict(RequestRefused):
    """The job is not in a state that allows the operation (e.g. cancelling a finished job)."""


class LedgerError(WorkerError):
    """A transfer was refused by the ledger's rules."""


class HoldAlreadyResolved(LedgerError):
    """The hold was already posted or voided the other way; a hold resolves exactly once."""
