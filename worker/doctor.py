"""`worker doctor`: what is misconfigured or unhealthy, and the one thing to do about each.

Checks are data (:class:`Check`); the CLI prints them. Network checks run in parallel, each
bounded by ``timeout`` seconds (connect and read), so a doctor run against a dead host still
finishes in a few seconds. A check whose prerequisite failed (no PostgreSQL, no Redis) is
reported as not checked, never as passed.

Secrets are never shown: keys appear by name, and every detail goes through the redaction
filter on its way out (:meth:`Check.as_dict`).
"""

from __future__ import annotations

import math
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import psycopg
import redis as redis_lib
from psycopg.rows import dict_row
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker import stats
from worker.config import Settings
from worker.errors import ErrorClass, ProviderError
from worker.kinds import JobKind, all_kinds, all_providers, keys_for
from worker.redaction import redact
from worker.sql import stats as q
from worker.webhooks import Webhook

#: Seconds each network check may take (connect, then answer).
DEFAULT_TIMEOUT = 3.0
#: Worker processes the connection budget plans for (`systemctl start worker@{1..20}`).
DEFAULT_INSTANCES = 20
#: Connections kept for everything that is not a worker: the bot, the CLI, migrations, backups.
RESERVED_CONNECTIONS = 5
#: Redis answering slower than this (median of a few pings) gets a warning.
SLOW_REDIS_MS = 50.0
#: Less free space than this in STORAGE_DIR gets a warning (and less than the largest file a
#: job kind stores, a failure).
LOW_DISK_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class Check:
    """One finding. ``ok`` False fails the doctor (exit 1); a ``warning`` is ok but needs a look."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False

    @property
    def level(self) -> str:
        return "fail" if not self.ok else "warn" if self.warning else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "warning": self.warning,
            "detail": redact(self.detail),
            "fix": redact(self.fix),
        }


def _not_checked(name: str, why: str, fix: str) -> Check:
    return Check(name, False, f"not checked: {why}", fix)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


# --- configuration ----------------------------------------------------------------------------


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


# --- PostgreSQL -------------------------------------------------------------------------------

_PG = ("postgres", "migrations", "connections", "stuck jobs")


def connection_budget(settings: Settings, instances: int) -> tuple[int, int]:
    """Connections one worker process may open, and what ``instances`` of them plus the rest need.

    A process's pool grows to ``max(DB_POOL_MAX, WORKER_THREADS + 3)`` (see worker.runner), and
    every process opens one more to try for the maintenance leader's lock.
    """
    per_instance = max(settings.db_pool_max, settings.worker_threads + 3) + 1
    return per_instance, per_instance * instances + RESERVED_CONNECTIONS


def postgres_checks(settings: Settings, *, instances: int, timeout: float) -> list[Check]:
    url = settings.database_url
    fix_reach = (
        "Check DATABASE_URL and that PostgreSQL is running and accepts connections from this host."
    )
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, math.ceil(timeout)),
            row_factory=dict_row,
            application_name="worker-doctor",
            options=f"-c statement_timeout={int(timeout * 1000)}",
        )
    except psycopg.Error as exc:
        reason = _first_line(exc)
        fix = fix_reach
        if "does not exist" in reason:
            fix = "Run `worker migrate`, which creates the database and its schema."
        return [
            Check("postgres", False, f"cannot connect: {reason}", fix),
            *(_not_checked(n, "no connection to PostgreSQL", fix) for n in _PG[1:]),
        ]
    checks: list[Check] = []
    with conn:
        limits = conn.execute(q.CONNECTION_LIMITS).fetchone()
        assert limits is not None
        checks.append(Check("postgres", True, f"PostgreSQL {limits['version']} reachable"))

        schema_ok = True
        try:
            from worker.migrate import pending

            waiting = pending(url)
        except Exception as exc:  # a broken migrations folder or a permission problem
            schema_ok = False
            checks.append(
                Check(
                    "migrations",
                    False,
                    f"cannot read the applied migrations: {_first_line(exc)}",
                    "Run `worker migrate` and read its error.",
                )
            )
        else:
            if waiting:
                schema_ok = False
                names = ", ".join(m.path.name for m in waiting)
                checks.append(
                    Check(
                        "migrations",
                        False,
                        f"{len(waiting)} not applied: {names}",
                        "Run `worker migrate` (safe to run from several hosts at once).",
                    )
                )
            else:
                checks.append(Check("migrations", True, "schema is current"))

        checks.append(_connections_check(settings, instances, limits))

        if not schema_ok:
            checks.append(
                _not_checked("stuck jobs", "the schema is not current", "Run `worker migrate`.")
            )
        else:
            checks.append(_stuck_check(stats.stuck_jobs(conn)))
    return checks


def _connections_check(settings: Settings, instances: int, limits: dict[str, Any]) -> Check:
    per_instance, needed = connection_budget(settings, instances)
    reserved = int(limits["superuser_reserved"]) + int(limits["reserved"])
    allowed = int(limits["max_connections"]) - reserved
    detail = (
        f"{instances} instance(s) × {per_instance} + {RESERVED_CONNECTIONS} spare = {needed} "
        f"needed; PostgreSQL allows {allowed} (max_connections {limits['max_connections']} − "
        f"{reserved} reserved), {limits['in_use']} in use now"
    )
    if needed <= allowed:
        return Check("connections", True, detail)
    return Check(
        "connections",
        False,
        detail,
        "Run fewer instances, lower DB_POOL_MAX or WORKER_THREADS (each instance takes "
        "max(DB_POOL_MAX, WORKER_THREADS + 3) + 1), or raise max_connections in postgresql.conf.",
    )


def _stuck_check(stuck: stats.Stuck) -> Check:
    if not stuck.total:
        return Check("stuck jobs", True, "none")
    parts = []
    if stuck.queued_overdue:
        oldest = stuck.oldest_overdue_seconds or 0.0
        parts.append(
            f"{stuck.queued_overdue} queued and overdue by more than "
            f"{stats.STUCK_AFTER_SECONDS / 60:g} min (oldest {oldest / 60:.0f} min)"
        )
    if stuck.lease_expired:
        parts.append(f"{stuck.lease_expired} running with an expired lease")
    examples = ", ".join(str(i) for i in stuck.examples)
    return Check(
        "stuck jobs",
        False,
        f"{stuck.total} stuck: {'; '.join(parts)} (e.g. job {examples})",
        "Start or restart the workers (`systemctl start worker.target`): their maintenance loop "
        "re-sends overdue jobs and rescues expired leases; `worker jobs show ID` explains one.",
    )


# --- Redis ------------------------------------------------------------------------------------


def _redis_names(settings: Settings) -> list[str]:
    providers = [p.name for p in all_providers() if p.keys(settings)]
    return ["redis", "dead letters", *(f"{p} key states" for p in providers)]


def redis_checks(settings: Settings, *, timeout: float) -> list[Check]:
    names = _redis_names(settings)
    fix_reach = "Check REDIS_URL and that Redis is running and reachable from this host."
    client = redis_lib.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    try:
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            client.ping()
            samples.append((time.perf_counter() - started) * 1000)
        info = client.info("server")
    except (redis_lib.RedisError, OSError) as exc:
        client.close()
        return [
            Check("redis", False, f"cannot reach Redis: {_first_line(exc)}", fix_reach),
            *(_not_checked(n, "Redis is unreachable", fix_reach) for n in names[1:]),
        ]
    latency = statistics.median(samples)
    version = info.get("redis_version", "?") if isinstance(info, dict) else "?"
    detail = f"Redis {version} answers in {latency:.1f} ms"
    checks = []
    if latency > SLOW_REDIS_MS:
        checks.append(
            Check(
                "redis",
                True,
                detail + f", slower than {SLOW_REDIS_MS:g} ms",
                "Run Redis close to the workers (same host or LAN) and check its load.",
                warning=True,
            )
        )
    else:
        checks.append(Check("redis", True, detail))
    try:
        checks.append(_dead_letter_check(client, settings))
        checks.extend(_key_state_checks(client, settings))
    except (redis_lib.RedisError, OSError) as exc:
        got = {c.name for c in checks}
        why = f"Redis failed mid-check ({_first_line(exc)})"
        checks.extend(_not_checked(n, why, fix_reach) for n in names if n not in got)
    finally:
        client.close()
    return checks


def _dead_letter_check(client: redis_lib.Redis, settings: Settings) -> Check:
    depths = stats.queue_depths(client, settings.redis_namespace, stats.queue_names())
    ready = sum(d.ready for d in depths)
    delayed = sum(d.delayed for d in depths)
    dead = [d for d in depths if d.dead]
    summary = f"{ready} ready and {delayed} delayed message(s) in {len(depths)} queues"
    if not dead:
        return Check("dead letters", True, f"none; {summary}")
    where = ", ".join(f"{d.queue}: {d.dead}" for d in dead)
    first = f"{settings.redis_namespace}:q:{dead[0].queue}.XQ"
    return Check(
        "dead letters",
        True,
        f"{sum(d.dead for d in dead)} dead-lettered message(s) ({where}); {summary}",
        f"Read them with `redis-cli ZRANGE {first} 0 -1` and the `.msgs` hash next to it, then "
        "delete both keys (jobs live in PostgreSQL, so no work is lost).",
        warning=True,
    )


def _key_state_checks(client: redis_lib.Redis, settings: Settings) -> list[Check]:
    from worker.keys import KeyPool, KeyState

    checks = []
    statuses = KeyPool.from_settings(settings, client).statuses()
    for provider in (p.name for p in all_providers()):
        mine = [s for s in statuses if s.provider == provider]
        if not mine:
            continue
        blocked = [s for s in mine if s.state in (KeyState.QUARANTINED, KeyState.DISABLED)]
        cooling = [s for s in mine if s.state is KeyState.COOLING]
        name = f"{provider} key states"
        if not blocked:
            detail = f"{len(mine)} usable" + (f", {len(cooling)} cooling down" if cooling else "")
            checks.append(Check(name, True, detail))
            continue
        listed = "; ".join(f"{s.name} {s.state}: {s.reason or '-'}" for s in blocked)
        fix = (
            "Fix the account behind each key (top up, replace the secret), then "
            "`worker keys enable NAME`."
        )
        if len(blocked) == len(mine):
            checks.append(Check(name, False, f"no usable key: {listed}", fix))
        else:
            checks.append(
                Check(name, True, f"{len(blocked)} of {len(mine)} out: {listed}", fix, True)
            )
    return checks


# --- providers --------------------------------------------------------------------------------


def provider_failure(name: str, err: ProviderError, what: str, variable: str, key: str) -> Check:
    where = f"HTTP {err.status}" if err.status is not None else "no HTTP answer"
    if err.code and err.code != str(err.status):
        where += f", {err.code}"
    cls = err.error_class
    if cls is ErrorClass.AUTH:
        detail = f"{what} rejected key {key} ({cls}, {where})"
        fix = (
            f"Replace the secret of {key} in {variable} with a valid one, then "
            f"`worker keys enable {key}`."
        )
    elif cls is ErrorClass.BILLING:
        detail = f"the account of key {key} has no credit left ({cls}, {where})"
        fix = f"Top up the {what} account of key {key}, then `worker keys enable {key}`."
    elif cls in (ErrorClass.TEMPORARY, ErrorClass.RATE_LIMIT):
        detail = f"{what} did not answer properly ({cls}, {where}): {err.message[:160]}"
        fix = (
            f"Check the {what} base URL and this host's network, then run doctor again in a minute."
        )
    else:
        detail = f"{what} refused the check ({cls}, {where}): {err.message[:160]}"
        fix = f"Check the {what} base URL and model settings."
    return Check(name, False, detail, fix)


def telegram_check(settings: Settings, *, timeout: float) -> Check:
    from worker.telegram import TelegramNotifier

    notifier = TelegramNotifier(
        settings.telegram_api_url, settings.telegram_bot_token.get_secret_value(), timeout=timeout
    )
    try:
        me = notifier.get_me()
    except ProviderError as err:
        if err.status in (401, 404) or err.error_class is ErrorClass.AUTH:
            return Check(
                "telegram bot",
                False,
                f"Telegram rejected the bot token ({err.message[:120]})",
                "Set TELEGRAM_BOT_TOKEN to the current token from @BotFather (/token).",
            )
        return provider_failure("telegram bot", err, "Telegram", "TELEGRAM_BOT_TOKEN", "token")
    finally:
        notifier.close()
    username = me.get("username") or me.get("first_name") or "?"
    return Check("telegram bot", True, f"getMe answered: @{username} (id {me.get('id', '?')})")


# --- provider callbacks -----------------------------------------------------------------------


def webhook_check(settings: Settings, kind: JobKind, hook: Webhook, *, timeout: float) -> Check:
    """Through the public URL the provider is given, does `worker webhooks` answer? (A GET,
    which the receiver answers with its name: the proxy's routing is what this checks.)"""
    from worker import http as provider_http
    from worker.webhooks import path_of

    name = f"callbacks {kind.name}/{hook.name}"
    url = hook.public_url(settings) or ""
    label = f"{kind.name}/{hook.name}"
    fix = (
        f"Run `worker webhooks` (systemd: worker-webhooks.service, listening on "
        f"{settings.webhook_host}:{settings.webhook_port}) and have your HTTPS proxy send "
        f"{url} to its {path_of(kind, hook)}; or unset {hook.url_variable} to poll only "
        "(jobs then wait for the provider's polling schedule)."
    )
    client = provider_http.client(timeout)
    try:
        response = client.get(url)
        answer = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError) as exc:
        return Check(name, False, f"{url} does not answer: {_first_line(exc)}", fix)
    finally:
        client.close()
    if not isinstance(answer, dict) or answer.get("webhook") != label:
        return Check(
            name,
            False,
            f"{url} answered HTTP {response.status_code}, not as `worker webhooks` ({label})",
            fix,
        )
    detail = f"{url} reaches `worker webhooks`"
    if not hook.signed(settings):
        return Check(
            name,
            True,
            detail + "; callbacks are not signed, so anyone who learns the URL can make "
            "jobs poll early",
            f"Set {hook.key_variable} to the webhook HMAC key from the provider's settings page.",
            warning=True,
        )
    return Check(name, True, detail + "; callbacks must be signed")


# --- storage ----------------------------------------------------------------------------------


def storage_check(settings: Settings) -> Check:
    from worker.storage import Storage

    path = settings.storage_dir
    storage = Storage(path)
    try:
        storage.check_writable()
        free = storage.free_bytes()
    except OSError as exc:
        return Check(
            "storage",
            False,
            f"STORAGE_DIR {path} is not writable ({exc.strerror or type(exc).__name__})",
            f"Create {path} and let the worker's user write to it (systemd: StateDirectory= or "
            "ReadWritePaths=), or point STORAGE_DIR at a writable folder.",
        )
    total = shutil.disk_usage(path).total
    detail = f"{path} writable, {free / 1024**3:.1f} GiB free of {total / 1024**3:.1f} GiB"
    needs = [need(settings) for kind in all_kinds() if (need := kind.largest_file) is not None]
    largest, what = max(needs, default=(0, ""))
    if free < largest:
        return Check(
            "storage",
            False,
            detail + f", less than {what}",
            "Free disk space in STORAGE_DIR (old results can be archived) or move it to a bigger "
            "disk.",
        )
    if free < LOW_DISK_BYTES:
        return Check(
            "storage",
            True,
            detail + f", below {LOW_DISK_BYTES / 1024**3:.0f} GiB",
            "Free disk space in STORAGE_DIR soon (old results can be archived).",
            warning=True,
        )
    return Check("storage", True, detail)


# --- running them -----------------------------------------------------------------------------


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
) -> list[Check]:
    """Every check, in a stable order; network checks in parallel, each time-boxed.

    ``options`` are the values of the doctor options the kinds declare (``DoctorOption``),
    by name; an option not given has its default."""
    given = {o.name: o.default for kind in all_kinds() for o in kind.doctor_options}
    given.update(options or {})
    tasks: list[_Task] = [
        _Task(
            _PG,
            lambda: postgres_checks(settings, instances=instances, timeout=timeout),
            "Check DATABASE_URL and that PostgreSQL answers.",
        ),
        _Task(
            _redis_names(settings),
            lambda: redis_checks(settings, timeout=timeout),
            "Check REDIS_URL and that Redis answers.",
        ),
    ]
    # Each job kind checks the keys of the providers it uses (e.g. an account's balance, or
    # that the key authenticates); the framework only knows the keys by provider name.
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
                        partial(_one, check, settings, key, timeout=timeout, **given),
                        f"Check {provider.upper()}_BASE_URL and this host's network.",
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
    tasks.append(_Task(["storage"], lambda: [storage_check(settings)], "Check STORAGE_DIR."))

    results: list[list[Check] | None] = [None] * len(tasks)

    def runner(i: int, task: _Task) -> None:
        try:
            results[i] = task.run()
        except Exception as exc:  # a check must report, never crash the doctor
            results[i] = [
                Check(n, False, f"check failed: {type(exc).__name__}: {_first_line(exc)}", task.fix)
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
    deadline = time.monotonic() + 4 * timeout + 2
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

    checks = config_checks(settings)
    for task, found in zip(tasks, results, strict=True):
        if found is None:
            found = [
                Check(n, False, f"no answer within {4 * timeout + 2:g} s", task.fix)
                for n in task.names
            ]
        checks.extend(found)
    return checks
