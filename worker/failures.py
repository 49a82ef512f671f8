"""Turning a failed step into what the policy table says: a plan to run it again, or a failure.

The runtime catches what a handler raised and asks here; this module applies
:func:`worker.policy.decide` (the key's fate, the alert, the job's) and writes nothing itself.
"""

from __future__ import annotations

import time

from worker.alerts import alert
from worker.config import ApiKey
from worker.context import StepContext
from worker.errors import ErrorClass, NoKeyAvailable, ProviderError
from worker.events import EventCode
from worker.kinds import keys_for
from worker.metrics import PROVIDER_ERRORS
from worker.outcomes import Fail, Plan
from worker.policy import Action, KeyAction, decide
from worker.status import StepOutcome

#: How long a job with no usable key (all quarantined) waits before looking again.
NO_KEY_RECHECK_SECONDS = 60.0


def on_error(ctx: StepContext, err: ProviderError) -> Fail | Plan:
    """Apply the policy table to a classified failure."""
    c, services = ctx.claim, ctx.services
    PROVIDER_ERRORS.labels(provider=err.provider, error_class=str(err.error_class)).inc()
    d = decide(
        err.error_class,
        attempts=c.attempts,
        max_attempts=ctx.settings.max_attempts,
        backoff=services.backoff,
        retry_after=err.retry_after,
    )
    if err.key_name and err.provider in services.keys.providers():
        key = _key(ctx, err.provider, err.key_name)
        if key is not None:
            services.keys.report_failure(key, err, fate=d.key)
    if d.alert:
        alert(
            f"{err.error_class} from {err.provider}",
            str(err),
            job=c.job_id,
            step=c.step,
            key=err.key_name or "-",
        )
    if d.action is Action.FAIL:
        if d.attempts > c.attempts:  # retries exhausted
            err = exhausted(err, d.attempts)
        return Fail(err)
    if d.action is Action.RETRY:
        detail = f"{err}; retrying in {d.delay:.1f} s ({d.reason})"
        return Plan.same_step(
            StepOutcome.RETRY,
            d.delay,
            d.attempts,
            event="retry",
            code=EventCode.RETRY,
            detail=detail,
            error=err,
        )
    if d.key.action is KeyAction.QUARANTINE:
        detail = f"{err}; key {err.key_name} quarantined, trying another key"
    else:
        detail = f"{err}; waiting {d.delay:.1f} s, {d.reason}"
    return Plan.same_step(
        StepOutcome.WAIT,
        d.delay,
        c.attempts,
        event="wait",
        code=EventCode.WAIT,
        detail=detail,
        error=err,
    )


def on_no_key(ctx: StepContext, exc: NoKeyAvailable) -> Fail | Plan:
    """No key of the provider can serve now: wait for one, or fail if none is configured."""
    if not ctx.services.keys.has_keys(exc.provider):
        alert("no keys configured", exc.reason, provider=exc.provider, job=ctx.job_id)
        return Fail(
            ProviderError(
                ErrorClass.UNAVAILABLE,
                exc.reason,
                provider=exc.provider,
                user_message="This service is not available right now.",
            )
        )
    if exc.retry_at is not None:
        delay = max(0.05, exc.retry_at - time.time())
    else:
        delay = NO_KEY_RECHECK_SECONDS
    # Keep the job's last error (the reason it is waiting) so a deadline failure names it.
    quiet = ctx.state.get("waiting_for") == exc.reason
    return Plan.same_step(
        StepOutcome.WAITING_FOR_KEY,
        delay,
        ctx.claim.attempts,
        event=None if quiet else "waiting for a key",
        code=EventCode.WAITING_FOR_KEY,
        detail=f"{exc}; looking again in {delay:.1f} s",
        state={"waiting_for": exc.reason},
    )


def bug(exc: Exception) -> ProviderError:
    """An unexpected exception from a handler: a bug on our side, retried like TEMPORARY."""
    return ProviderError(ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}", provider="worker")


def exhausted(err: ProviderError, attempts: int) -> ProviderError:
    return ProviderError(
        err.error_class,
        f"gave up after {attempts} attempts: {err.message}",
        provider=err.provider,
        status=err.status,
        code=err.code,
        user_message=err.user_message,
        retry_after=err.retry_after,
        key_name=err.key_name,
        outcome_unknown=err.outcome_unknown,
    )


def _key(ctx: StepContext, provider: str, name: str) -> ApiKey | None:
    return next((k for k in keys_for(ctx.settings, provider) if k.name == name), None)
