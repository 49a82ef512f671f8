"""Sentry and the Prometheus endpoint of a worker process.

Sentry is initialised before the broker exists (its Dramatiq integration patches the broker
class) and every event, breadcrumb and context passes through the redaction function, values
included: the SDK's own scrubber matches dict keys only. Our actors never raise, so the
integration sends nothing per attempt, and log records are breadcrumbs, not events: Sentry
events come from :func:`worker.alerts.alert`, which the step runtime calls once per failed job
(and at once for billing, auth and unavailable models).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from worker.config import Settings
from worker.redaction import redact_obj

if TYPE_CHECKING:
    from worker.runner import WorkerProcess

log = logging.getLogger(__name__)


def scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Redact every string in a Sentry event or breadcrumb."""
    result: dict[str, Any] = redact_obj(event)
    return result


def init_sentry(settings: Settings, *, transport: Any = None) -> bool:
    dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    options: dict[str, Any] = {
        "dsn": dsn,
        # Log records are breadcrumbs only: events come from worker.alerts.alert, once per
        # alert. By default every ERROR record is an event too, which sent one per failed
        # attempt (the runtime logs each INTERNAL exception) and a second one per alert (which
        # logs its text at ERROR before capturing it).
        "integrations": [
            DramatiqIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        "before_send": scrub_event,
        "before_breadcrumb": scrub_event,
        "include_local_variables": False,  # locals hold keys and tokens
        "max_request_body_size": "never",
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    return True


def start_metrics_server(process: WorkerProcess) -> int | None:
    """Serve /metrics on METRICS_HOST:METRICS_PORT + instance, if METRICS_PORT is set.

    One endpoint per process: this process's counters (worker.metrics) and the system-wide
    gauges read from PostgreSQL and Redis at scrape time (worker.metrics_collector).
    """
    port = process.settings.metrics_port
    if not port:
        return None
    from prometheus_client import start_http_server

    from worker import metrics  # noqa: F401  (registers the counters before the first step)
    from worker.metrics_collector import install

    install(process.settings, process.db, process.redis)
    host = process.settings.metrics_host
    start_http_server(port + process.instance, addr=host)
    log.info("metrics on %s:%d", host, port + process.instance)
    return port + process.instance
