"""Running every check: the configuration first, then the network checks in parallel, each
time-boxed, so a doctor run against a dead host still finishes in a few seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from worker.config import Settings
from worker.doctor.backlog import backlog_checks
from worker.doctor.backlog import names as backlog_names
from worker.doctor.check import Check, first_line
from worker.doctor.postgres import NAMES as POSTGRES_NAMES
from worker.doctor.postgres import postgres_checks
from worker.doctor.redis_state import redis_checks, redis_names
from worker.doctor.remote import telegram_check, webhook_check
from worker.doctor.storage import storage_check
from worker.kinds import all_kinds, all_providers, keys_for

#: Seconds each network check may take (connect, then answer).
DEFAULT_TIMEOUT = 3.0
#: Worker processes the connection budget plans for (`systemctl start worker@{1..20}`).
DEFAULT_INSTANCES = 20


def config_checks(settings: Settings) -> list[Check]:
    """Each provider the job kinds declare has keys (shown by name only)."""
    checks = []
    users: dict[str, list[str]] = {}
    for kind in all_kinds():
        for declared in kind.providers:
            users.setdefault(declared.name, []).append(kind.name)
    for provider in all_providers():
        keys = provider.keys(settings)
        name = f"{provider.name} keys"
        if keys:
            names = ", ".join(k.name for k in keys)
            checks.append(Check(name, True, f"{len(keys)} configured: {names}"))
        else:
            kinds = " or ".join(users[provider.name])
            checks.append(
                Check(
                    name,
                    False,
                    f"no {provider.name} key is configured, so no {kinds} job can run",
                    f"Set {provider.keys_variable} to comma-separated name=secret entries (in the "
                    "environment file or as a systemd credential).",
                )
            )
    if settings.telegram_bot_token.get_secret_value():
        checks.append(Check("telegram token", True, "set"))
    else:
        checks.append(
            Check(
                "telegram token",
                False,
                "no bot token is configured, so users are never told about their jobs",
                "Set TELEGRAM_BOT_TOKEN to the token @BotFather gave the bot.",
            )
        )
    return checks


def _one(check: Callable[..., Check], *args: Any, **kwargs: Any) -> list[Check]:
    return [check(*args, **kwargs)]


@dataclass(frozen=True)
class _Task:
    names: Sequence[str]
    run: Callable[[], list[Check]]
    fix: str


def run_checks(
    settings: Settings,
    *,
    instances: int = DEFAULT_INSTANCES,
    timeout: float = DEFAULT_TIMEOUT,
    options: Mapping[str, float] | None = None,
    hosts: int = 1,
) -> list[Check]:
    """Every check, in a stable order; network checks in parallel, each time-boxed.

    ``options`` are the values of the doctor options the kinds declare (``DoctorOption``),
    by name; an option not given has its default."""
    given = {o.name: o.default for kind in all_kinds() for o in kind.doctor_options}
    given.update(options or {})
    tasks: list[_Task] = [
        _Task(
            POSTGRES_NAMES,
            lambda: postgres_checks(settings, instances=instances, timeout=timeout, hosts=hosts),
            "Check DATABASE_URL and that PostgreSQL answers.",
        ),
        _Task(
            redis_names(settings),
            lambda: redis_checks(settings, timeout=timeout),
            "Check REDIS_URL and that Redis answers.",
        ),
        *_key_tasks(settings, timeout, given),
    ]
    if backlog_names():
        tasks.append(
            _Task(
                backlog_names(),
                lambda: backlog_checks(settings, timeout=timeout),
                "Check DATABASE_URL and that the schema is current (`worker migrate`).",
            )
        )
    if settings.telegram_bot_token.get_secret_value():
        tasks.append(
            _Task(
                ["telegram bot"],
                lambda: [telegram_check(settings, timeout=timeout)],
                "Check TELEGRAM_API_URL and this host's network.",
            )
        )
    tasks += _webhook_tasks(settings, timeout)
    tasks.append(_Task(["storage"], lambda: [storage_check(settings)], "Check STORAGE_DIR."))
    return config_checks(settings) + _run(tasks, 4 * timeout + 2)


def _key_tasks(settings: Settings, timeout: float, options: Mapping[str, float]) -> list[_Task]:
    """Each job kind checks the keys of the providers it uses (e.g. an account's balance, or
    that the key authenticates); the framework only knows the keys by provider name."""
    tasks = []
    seen: set[str] = set()
    for kind in all_kinds():
        for provider, check in kind.key_checks().items():
            if provider in seen:
                continue
            seen.add(provider)
            for key in keys_for(settings, provider):
                tasks.append(
                    _Task(
                        [f"{provider} key {key.name}"],
                        partial(_one, check, settings, key, timeout=timeout, **options),
                        f"Check {provider.upper()}_BASE_URL and this host's network.",
                    )
                )
    return tasks


def _webhook_tasks(settings: Settings, timeout: float) -> list[_Task]:
    """Each provider callback a kind declares, through its public URL (when one is set)."""
    tasks = []
    for kind in all_kinds():
        for hook in kind.webhooks():
            if hook.public_url(settings):
                tasks.append(
                    _Task(
                        [f"callbacks {kind.name}/{hook.name}"],
                        partial(_one, webhook_check, settings, kind, hook, timeout=timeout),
                        f"Check {hook.url_variable} and that `worker webhooks` runs.",
                    )
                )
    return tasks


def _run(tasks: list[_Task], limit: float) -> list[Check]:
    """The tasks' findings in order, each run in its own thread for at most ``limit`` seconds
    in all; a task that raised, or did not answer in time, is a failed check, never a pass."""
    results: list[list[Check] | None] = [None] * len(tasks)

    def runner(i: int, task: _Task) -> None:
        try:
            results[i] = task.run()
        except Exception as exc:  # a check must report, never crash the doctor
            results[i] = [
                Check(n, False, f"check failed: {type(exc).__name__}: {first_line(exc)}", task.fix)
                for n in task.names
            ]

    # Daemon threads: a check stuck past its time box must not keep the process alive.
    threads = [
        threading.Thread(target=runner, args=(i, t), name=f"doctor-{i}", daemon=True)
        for i, t in enumerate(tasks)
    ]
    for thread in threads:
        thread.start()
    # Each check makes a few bounded exchanges; allow for them, then give up.
    deadline = time.monotonic() + limit
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

    checks = []
    for task, found in zip(tasks, results, strict=True):
        if found is None:
            found = [Check(n, False, f"no answer within {limit:g} s", task.fix) for n in task.names]
        checks.extend(found)
    return checks
