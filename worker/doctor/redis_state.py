"""Redis checks: reachable and fast, dead letters, and the shared state of every provider's keys."""

from __future__ import annotations

import statistics
import time

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker import stats
from worker.config import Settings
from worker.doctor.check import Check, first_line, not_checked
from worker.kinds import all_providers

#: Redis answering slower than this (median of a few pings) gets a warning.
SLOW_REDIS_MS = 50.0


def redis_names(settings: Settings) -> list[str]:
    providers = [p.name for p in all_providers() if p.keys(settings)]
    return ["redis", "dead letters", *(f"{p} key states" for p in providers)]


def redis_checks(settings: Settings, *, timeout: float) -> list[Check]:
    names = redis_names(settings)
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
            Check("redis", False, f"cannot reach Redis: {first_line(exc)}", fix_reach),
            *(not_checked(n, "Redis is unreachable", fix_reach) for n in names[1:]),
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
        why = f"Redis failed mid-check ({first_line(exc)})"
        checks.extend(not_checked(n, why, fix_reach) for n in names if n not in got)
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
