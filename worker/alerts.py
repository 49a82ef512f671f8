"""Telling operators: an ERROR log line (journald), a Sentry event when Sentry is on, and a
counter for Prometheus. Used for the policy table's "operators" column.

This is the one place that sends Sentry events (log records are only breadcrumbs, see
:func:`worker.observability.init_sentry`), so one alert is one event. When the alert is raised
while a bug of ours is being handled (INTERNAL: an unexpected exception, not a classified
provider failure), the event carries that exception and its stack trace.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from worker.errors import ProviderError, WorkerError
from worker.redaction import redact

log = logging.getLogger("worker.alerts")


def alert(what: str, message: str, **context: Any) -> None:
    """Raise an operator alert (billing, auth, unavailable models, exhausted retries...)."""
    text = redact(f"{what}: {message}")
    log.error("ALERT %s %s", text, " ".join(f"{k}={redact(v)}" for k, v in context.items()))
    try:
        from worker import metrics

        metrics.ALERTS.labels(what=what).inc()
    except Exception:  # metrics are best effort
        pass
    try:
        import sentry_sdk

        if sentry_sdk.is_initialized():
            bug = sys.exc_info()[1]
            with sentry_sdk.new_scope() as scope:
                scope.set_tag("alert", what)
                for key, value in context.items():
                    scope.set_tag(key, redact(value))
                if bug is not None and not isinstance(bug, ProviderError | WorkerError):
                    scope.set_context("alert", {"what": what, "message": text})
                    sentry_sdk.capture_exception(bug)
                else:
                    sentry_sdk.capture_message(text, level="error")
    except Exception:  # pragma: no cover - Sentry must never break a step
        log.debug("sentry capture failed", exc_info=True)
