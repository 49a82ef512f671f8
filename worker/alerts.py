"""Telling operators: an ERROR log line (journald), a Sentry event when Sentry is on, and a
counter for Prometheus. Used for the policy table's "operators" column."""

from __future__ import annotations

import logging
from typing import Any

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
            with sentry_sdk.new_scope() as scope:
                for key, value in context.items():
                    scope.set_tag(key, redact(value))
                sentry_sdk.capture_message(text, level="error")
    except Exception:  # pragma: no cover - Sentry must never break a step
        log.debug("sentry capture failed", exc_info=True)
