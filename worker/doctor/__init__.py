"""`worker doctor`: what is misconfigured or unhealthy, and the one thing to do about each.

Checks are data (:class:`Check`); the CLI prints them. Network checks run in parallel, each
bounded by ``timeout`` seconds (connect and read), so a doctor run against a dead host still
finishes in a few seconds. A check whose prerequisite failed (no PostgreSQL, no Redis) is
reported as not checked, never as passed.

One module per thing checked: :mod:`~worker.doctor.postgres`, :mod:`~worker.doctor.redis_state`
(Redis and the key pool's state), :mod:`~worker.doctor.remote` (a provider's answer to a key
check, the Telegram bot, the callback routes), :mod:`~worker.doctor.storage`; the job kinds add
the checks of their providers' keys (``JobKind.key_checks_module``), and
:mod:`~worker.doctor.runner` runs them all.

Secrets are never shown: keys appear by name, and every detail goes through the redaction
filter on its way out (:meth:`Check.as_dict`).
"""

from worker.doctor.check import Check
from worker.doctor.postgres import connection_budget
from worker.doctor.remote import provider_failure
from worker.doctor.runner import DEFAULT_INSTANCES, DEFAULT_TIMEOUT, config_checks, run_checks

__all__ = [
    "DEFAULT_INSTANCES",
    "DEFAULT_TIMEOUT",
    "Check",
    "config_checks",
    "connection_budget",
    "provider_failure",
    "run_checks",
]
