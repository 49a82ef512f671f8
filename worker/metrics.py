"""Prometheus metrics of one worker process (exposed on METRICS_PORT + instance by `worker run`).

Counters and histograms are updated where things happen; gauges that need the database or Redis
(jobs by status, credits, queue depth, key states) are computed at scrape time by a collector in
:mod:`worker.metrics_collector`, cheaply, so an idle scrape costs a few indexed queries.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STEPS = Counter(
    "worker_steps_total", "Steps run, by kind, step and outcome", ["kind", "step", "outcome"]
)
STEP_SECONDS = Histogram(
    "worker_step_duration_seconds",
    "Wall time of one step (one provider exchange plus its database writes)",
    ["kind", "step"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
PROVIDER_ERRORS = Counter(
    "worker_provider_errors_total", "Classified provider failures", ["provider", "error_class"]
)
CLAIM_MISSES = Counter(
    "worker_claim_misses_total",
    "Wake-up messages that found nothing to do (duplicates, late)",
    ["kind", "step"],
)
JOBS_FINISHED = Counter(
    "worker_jobs_finished_total",
    "Jobs that reached a terminal state",
    ["kind", "status", "error_class"],
)
ALERTS = Counter("worker_alerts_total", "Operator alerts raised", ["what"])
NOTIFICATIONS = Counter(
    "worker_notifications_total", "User notifications by kind and outcome", ["kind", "outcome"]
)
MAINTENANCE = Counter(
    "worker_maintenance_actions_total",
    "Maintenance actions (redispatch, rescue, deadline...)",
    ["action"],
)
STORAGE_REMOVED = Counter(
    "worker_storage_removed_files_total",
    "Stored files removed by the retention pass (job files, shared files, stale partials)",
    ["what"],
)
CALLBACKS = Counter(
    "worker_callbacks_total",
    "Provider callbacks received by `worker webhooks`, by what they did (woken, due, running, "
    "stale, moved, finished, unknown, rejected, error)",
    ["kind", "webhook", "outcome"],
)
CALLBACKS_MISSED = Counter(
    "worker_callbacks_missed_total",
    "Tasks a safety-net poll found ended with no callback before it (callbacks on): lost or "
    "misrouted callbacks",
    ["kind", "provider"],
)

# The fair gate at a kind's bottleneck (worker.fair_gate) and admission (worker.admission). The
# gauges are set by the processes that read the backlog (a submit's estimate, a worker passing
# the gate, `worker jobs stats`), at most every few seconds: aggregate them with max.
GATE_BACKLOG = Gauge(
    "worker_gate_backlog",
    "Jobs waiting at the kind's bottleneck for a provider slot",
    ["kind", "provider"],
    multiprocess_mode="max",
)
GATE_WAIT_SECONDS = Histogram(
    "worker_gate_wait_seconds",
    "Seconds from submit to passing the kind's bottleneck (a provider slot taken)",
    ["kind"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600),
)
ADMISSION_ETA = Gauge(
    "worker_admission_eta_seconds",
    "The estimated seconds to the result a new one-job request would get now",
    ["kind"],
    multiprocess_mode="max",
)
BUSY_REFUSALS = Counter(
    "worker_busy_refusals_total", "Requests refused as Busy (estimate over the limit)", ["kind"]
)
