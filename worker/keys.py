"""The key pool: provider API keys as one scheduled resource shared by every worker process.

Design principle 7: all processes, on all hosts, see the same state for a key — its cooldown
after a 429 (which only ever extends), its quarantine after a 401/403 or a billing failure (until
an operator re-enables it), an operator's ``disable`` — and pace their requests within the
provider's published limits, as the job kinds declare them (``worker.kinds.Provider``: e.g. so
many creates per 10 s per account). A limit has a scope: per *account* (the default: every key
of an account, ``name=secret@account``, draws on one budget) or per *key*. When one account's
budget is spent, the pool hands out a key of another account; keys of the spent account wait.
That state lives in Redis and every decision that reads and writes it is one Lua script, so two
processes can never both take the last slot of a pacing window.

Secrets never leave this process: Redis holds key *names* and state only; the secret stays in the
:class:`~worker.config.ApiKey` objects loaded from configuration, and :meth:`KeyPool.acquire`
returns those objects. Error texts are scrubbed of the pool's own secrets before they are stored,
on top of the redaction :class:`~worker.errors.ProviderError` already applies.

The Redis layout and the scripts are in :mod:`worker.keyscripts`; the state as operators read
it, in :mod:`worker.keystate`.

Clock: every timestamp is Redis server time, read with ``TIME`` inside the script that acts on
it. With workers on several hosts, pacing decisions compare timestamps written by different
processes; one clock makes "20 in any 10 s" hold exactly, where host clocks skewed by a fraction
of a second would let a window admit extra requests. The ``clock`` argument exists so tests can
drive time deterministically: when given, its value is passed to every script instead of
``TIME``. Production code (:meth:`KeyPool.from_settings`) never passes one. ``retry_at`` values
and ``cooling_until`` are therefore in Redis's epoch; hosts are NTP-synchronised, and a retry
scheduled a few milliseconds early just meets :class:`~worker.errors.NoKeyAvailable` again.

Redis errors (connection refused, timeouts) propagate unchanged: the caller's step fails as
TEMPORARY and is retried, which is right — no key state is guessed locally.

Margin: the pool counts hand-outs, the provider counts arrivals. At the limit, the request
that reuses a slot leaves the moment the slot's earlier request leaves the window; if that
earlier request was slower on its way (a thread scheduled late, a slower connection), both
arrive within one provider window and the later one gets a 429. So :meth:`from_settings` paces
over a window ``PACE_MARGIN`` (5 %) longer than the declared one: a declared 20 per 10 s is
paced as 20 per 10.5 s. Measured against the simulator at 5 per 1 s with 8 threads on two
keys of one account: 14 429s per 100 creates without a margin, none with 2 % or 5 %
(tests/test_keys_accounts.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from redis import Redis, RedisError

from worker.config import ApiKey, RateLimit
from worker.errors import ErrorClass, NoKeyAvailable, ProviderError, WorkerError
from worker.http import MAX_RETRY_AFTER_SECONDS
from worker.keyscripts import ACQUIRE, EXTEND, FAILURE, QUARANTINE, STAMP
from worker.keystate import AccountStatus, KeyState, KeyStatus, Pace, PaceScope, status_of, text
from worker.policy import KeyAction, KeyFate, key_fate
from worker.redaction import MASK, redact

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = ["AccountStatus", "KeyPool", "KeyState", "KeyStatus", "Pace", "PaceScope", "UnknownKey"]

#: Pacing history kept per key and purpose, beyond the window itself (for inspection and tests).
PACE_HISTORY_SECONDS = 60.0
#: How much longer than the provider's window the pool paces over, as a fraction of it
#: (:meth:`KeyPool.from_settings`; see "Margin" in the module docstring).
PACE_MARGIN = 0.05
#: Longest error text stored for a key (``last_error``, quarantine reasons).
MAX_ERROR_CHARS = 200

#: ``last_success`` is written at most this often per key by one process.
SUCCESS_STAMP_SECONDS = 1.0


class UnknownKey(WorkerError, KeyError):
    """A key name that is not configured for that provider (removed from configuration?)."""

    def __str__(self) -> str:
        # KeyError would show the message in quotes; this is a sentence for a person.
        return str(self.args[0]) if self.args else "unknown key"


def _truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _with_wait(reason: str, retry_at: float | None, now: float) -> str:
    if retry_at is None:
        return reason
    wait = max(0.0, retry_at - now)
    return f"{reason}; one is free again in {math.ceil(wait * 10) / 10:g} s"


class KeyPool:
    """Hands out provider keys so that all processes together respect each key's state and pace.

    Thread-safe and process-safe: no state is kept in the object beyond configuration; every
    decision is a Redis script. Keys are identified by ``(provider, name)``.
    """

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        keys: Sequence[ApiKey],
        limits: Mapping[tuple[str, str], RateLimit] | None = None,
        *,
        scopes: Mapping[tuple[str, str], PaceScope] | None = None,
        margin: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``limits`` paces ``(provider, purpose)``; ``scopes`` says per what (default: per
        account); ``margin`` lengthens every pacing window by that fraction of it."""
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be a fraction in [0, 1), got {margin!r}")
        self._redis = redis
        self._prefix = f"{namespace}:keys"
        self._keys: tuple[ApiKey, ...] = tuple(keys)
        self._by_provider: dict[str, list[ApiKey]] = {}
        for key in self._keys:
            self._by_provider.setdefault(key.provider, []).append(key)
        self._limits: dict[tuple[str, str], RateLimit] = dict(limits or {})
        self._scopes: dict[tuple[str, str], PaceScope] = dict(scopes or {})
        self._margin = margin
        self._clock = clock
        self._secrets = [s for s in (k.secret.get_secret_value() for k in self._keys) if s]
        self._acquire = redis.register_script(ACQUIRE)
        self._failure = redis.register_script(FAILURE)
        self._extend = redis.register_script(EXTEND)
        self._quarantine = redis.register_script(QUARANTINE)
        self._stamp = redis.register_script(STAMP)
        self._stamped: dict[tuple[str, str], float] = {}  # last success written, monotonic

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> KeyPool:
        """The pool of the keys of every provider the job kinds declare, paced at the limits
        they declare, with ``PACE_MARGIN``."""
        from worker.kinds import all_providers

        providers = all_providers()
        return cls(
            redis,
            settings.redis_namespace,
            [key for p in providers for key in p.keys(settings)],
            {
                (p.name, purpose): rate
                for p in providers
                for purpose, rate in p.limits(settings).items()
            },
            scopes={
                (p.name, purpose): scope for p in providers for purpose, scope in p.scopes.items()
            },
            margin=PACE_MARGIN,
        )

    # -- configuration ---------------------------------------------------------------------

    def providers(self) -> list[str]:
        """Providers that have at least one configured key, in configuration order."""
        return list(self._by_provider)

    def has_keys(self, provider: str) -> bool:
        return bool(self._by_provider.get(provider))

    # -- handing out keys --------------------------------------------------------------------

    def acquire(self, provider: str, purpose: str = "default") -> ApiKey:
        """The least recently used key of ``provider`` that may make a ``purpose`` request now.

        The use is recorded in the same script that chose the key, so the caller must make the
        request (or accept that a pacing slot was spent). Raises :class:`NoKeyAvailable` with
        the time one is free again, or ``retry_at=None`` when only an operator can help.
        """
        candidates = self._by_provider.get(provider, [])
        if not candidates:
            variable = f"{provider.upper()}_API_KEYS"
            raise NoKeyAvailable(provider, None, f"no keys configured; set {variable}")
        found, retry_at, now, codes = self._run_acquire(provider, purpose, candidates, screen=True)
        if found is not None:
            return found
        reason = self._explain(provider, purpose, candidates, codes, retry_at, now)
        raise NoKeyAvailable(provider, retry_at, reason)

    def acquire_named(self, provider: str, name: str, purpose: str = "default") -> ApiKey:
        """The key called ``name``, to poll a task it created (the task belongs to its account).

        Quarantine and disable are ignored — a key quarantined for billing can still read its
        own tasks, and no other key can — but cooldown and pacing are honoured.
        """
        key = self._find(provider, name)
        found, retry_at, now, codes = self._run_acquire(provider, purpose, [key], screen=False)
        if found is not None:
            return found
        what = []
        if "c" in codes[0]:
            what.append("cooling down")
        if "p" in codes[0]:
            limit = self._limits[(provider, purpose)]
            if self.scope(provider, purpose) is PaceScope.ACCOUNT and key.account != key.name:
                what.append(f"at its account {key.account}'s {purpose} pace limit ({limit})")
            else:
                what.append(f"at its {purpose} pace limit ({limit})")
        reason = f"key {name} is {' and '.join(what)}"
        raise NoKeyAvailable(provider, retry_at, _with_wait(reason, retry_at, now))

    # -- reports -----------------------------------------------------------------------------

    def report_success(self, key: ApiKey) -> None:
        """Record that the key worked (``last_success``). Cooldowns are not shortened by it.

        Written at most once per ``SUCCESS_STAMP_SECONDS`` per key by this process (a busy
        worker would otherwise spend a Redis round trip per request on a timestamp); the first
        success after a failure is always written.

        Never raises: the stamp is information for operators, and the step that succeeded may
        still have to commit what it got (a provider task). A Redis error is logged and the
        next success tries again."""
        now = time.monotonic()
        ident = (key.provider, key.name)
        if now - self._stamped.get(ident, -math.inf) < SUCCESS_STAMP_SECONDS:
            return
        self._stamped[ident] = now
        try:
            self._stamp(
                keys=[self._hash(key.provider, key.name)],
                args=[self._now_arg(), "last_success", "", ""],
            )
        except RedisError as exc:
            self._stamped.pop(ident, None)
            log.warning("could not stamp key %s/%s as working: %s", key.provider, key.name, exc)

    def report_failure(
        self,
        key: ApiKey,
        error: ProviderError,
        *,
        backoff: float = 5.0,
        fate: KeyFate | None = None,
    ) -> None:
        """Do to ``key`` what the policy table's key column says (``fate``, the runtime's
        decision; else :func:`worker.policy.key_fate` with ``backoff`` as the cooldown when the
        provider named none): cool it down (extend-only) or quarantine it until an operator
        calls :meth:`enable`. Every class counts as an error and becomes ``last_error``."""
        self._stamped.pop((key.provider, key.name), None)
        message = _truncate(self._scrub(error.message))
        cls = ErrorClass(error.error_class)
        fate = fate or key_fate(cls, error.retry_after, backoff)
        cooldown = repr(fate.seconds) if fate.action is KeyAction.COOLDOWN else ""
        if error.retry_after is not None and error.retry_after >= MAX_RETRY_AFTER_SECONDS:
            # worker.http caps what a provider asks: the key's status says it was capped
            message += f" (Retry-After capped at {MAX_RETRY_AFTER_SECONDS:g} s)"
        reason = f"{cls}: {message}" if fate.action is KeyAction.QUARANTINE else ""
        self._failure(
            keys=[self._hash(key.provider, key.name)],
            args=[self._now_arg(), f"{cls}: {message}", cooldown, reason],
        )

    def extend_cooldown(self, provider: str, name: str, until: float) -> float:
        """Cool the key down until ``until`` (epoch seconds) unless it already cools longer.

        Returns the effective end of the cooldown: the later of the old and the new one.
        """
        if not math.isfinite(until):
            raise ValueError(f"cooldown end must be a finite epoch time, got {until!r}")
        result = self._extend(
            keys=[self._hash(provider, name)], args=[self._now_arg(), repr(until)]
        )
        return float(text(result))

    def quarantine(self, provider: str, name: str, reason: str) -> None:
        """Stop handing the key out until an operator enables it. The first reason is kept."""
        self._quarantine(
            keys=[self._hash(provider, name)],
            args=[self._now_arg(), _truncate(self._scrub(reason), 2 * MAX_ERROR_CHARS)],
        )

    # -- operator ----------------------------------------------------------------------------

    def enable(self, name: str, provider: str | None = None) -> KeyStatus:
        """Clear quarantine, disable and cooldown: the operator says the key works again."""
        key = self._find(provider, name)
        self._redis.hdel(
            self._hash(key.provider, key.name),
            "quarantine_reason",
            "quarantined_at",
            "disabled_reason",
            "disabled_at",
            "cooling_until",
        )
        return self._status_of(key)

    def disable(
        self, name: str, provider: str | None = None, reason: str = "disabled by operator"
    ) -> KeyStatus:
        """Stop handing the key out (tasks it created can still be polled) until :meth:`enable`."""
        key = self._find(provider, name)
        self._stamp(
            keys=[self._hash(key.provider, key.name)],
            args=[
                self._now_arg(),
                "disabled_at",
                "disabled_reason",
                _truncate(self._scrub(reason), 2 * MAX_ERROR_CHARS),
            ],
        )
        return self._status_of(key)

    def statuses(self) -> list[KeyStatus]:
        """Every configured key's state, in configuration order (``worker keys ls``)."""
        return self._statuses(self._keys)

    # -- internals ---------------------------------------------------------------------------

    def _hash(self, provider: str, name: str) -> str:
        return f"{self._prefix}:{provider}:{name}"

    def scope(self, provider: str, purpose: str) -> PaceScope:
        """Whether ``purpose`` requests of ``provider`` are paced per account or per key."""
        return self._scopes.get((provider, purpose), PaceScope.ACCOUNT)

    def _pace(self, key: ApiKey, purpose: str) -> str:
        scope = self.scope(key.provider, purpose)
        unit = key.account if scope is PaceScope.ACCOUNT else key.name
        return f"{self._prefix}:{key.provider}:{unit}:pace:{purpose}"

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(float(self._clock()))

    def _now(self) -> float:
        if self._clock is not None:
            return float(self._clock())
        seconds, micros = self._redis.time()
        return int(seconds) + int(micros) / 1_000_000

    def _scrub(self, text: str) -> str:
        text = redact(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _find(self, provider: str | None, name: str) -> ApiKey:
        matches = [
            k for k in self._keys if k.name == name and (provider is None or k.provider == provider)
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            where = " and ".join(k.provider for k in matches)
            raise UnknownKey(f"the key name {name!r} is configured for {where}; name the provider")
        if provider is None:
            raise UnknownKey(f"no key named {name!r} is configured")
        raise UnknownKey(
            f"no {provider} key named {name!r} is configured "
            f"(was it removed from {provider.upper()}_API_KEYS?)"
        )

    def _run_acquire(
        self, provider: str, purpose: str, candidates: Sequence[ApiKey], *, screen: bool
    ) -> tuple[ApiKey | None, float | None, float, list[str]]:
        """Run the acquire script: (key, None, now, []) or (None, retry_at, now, codes)."""
        limit = self._limits.get((provider, purpose))
        count, window_us = (
            (limit.count, round(limit.seconds * (1 + self._margin) * 1e6)) if limit else (0, 0)
        )
        history_us = max(window_us, round(PACE_HISTORY_SECONDS * 1e6))
        keys: list[str] = []
        for key in candidates:
            keys += [self._hash(provider, key.name), self._pace(key, purpose)]
        keys.append(f"{self._prefix}:seq")
        args: list[str | int] = [
            self._now_arg(),
            count,
            window_us,
            history_us,
            "1" if screen else "0",
        ]
        result = self._acquire(keys=keys, args=[*args, *(k.name for k in candidates)])
        values = [text(v) for v in result]
        if values[0] == "ok":
            return next(k for k in candidates if k.name == values[1]), None, 0.0, []
        retry_at = int(values[1]) / 1_000_000 if values[1] else None
        return None, retry_at, int(values[2]) / 1_000_000, values[3:]

    def _explain(
        self,
        provider: str,
        purpose: str,
        candidates: Sequence[ApiKey],
        codes: list[str],
        retry_at: float | None,
        now: float,
    ) -> str:
        """Say in plain words why no key can serve, e.g. "2 keys cooling down, 1 quarantined"
        (``codes``: one per candidate, in order)."""
        cooling = sum(1 for c in codes if c.split(":", 1)[0] in ("c", "cp"))
        paced = sum(1 for c in codes if c.split(":", 1)[0] == "p")
        disabled = sum(1 for c in codes if c.startswith("d:"))
        quarantined = [c[2:] for c in codes if c.startswith("q:")]
        parts: list[tuple[int, str]] = []
        if cooling:
            parts.append((cooling, "cooling down"))
        if paced:
            limit = self._limits.get((provider, purpose))
            what = f"at the {purpose} pace limit ({limit})"
            shared = any(k.account != k.name for k in candidates)
            if shared and self.scope(provider, purpose) is PaceScope.ACCOUNT:
                accounts = {
                    k.account
                    for k, c in zip(candidates, codes, strict=True)
                    if c.split(":", 1)[0] == "p"
                }
                what += (
                    " of their account" if len(accounts) == 1 else f" of {len(accounts)} accounts"
                )
            parts.append((paced, what))
        if quarantined:
            why = []
            for reason in quarantined:
                head = reason.split(":", 1)[0]
                label = head.lower() if head in ErrorClass.__members__ else _truncate(reason, 40)
                if label not in why:
                    why.append(label)
            parts.append((len(quarantined), f"quarantined ({', '.join(why)})"))
        if disabled:
            parts.append((disabled, "disabled"))
        words = [
            f"{_plural(n, 'key')} {what}" if i == 0 else f"{n} {what}"
            for i, (n, what) in enumerate(parts)
        ]
        reason = ", ".join(words)
        if retry_at is None:
            reason += "; only an operator can bring one back (enable)"
        return _with_wait(reason, retry_at, now)

    def _status_of(self, key: ApiKey) -> KeyStatus:
        return self._statuses([key])[0]

    def _statuses(self, keys: Sequence[ApiKey]) -> list[KeyStatus]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._hash(key.provider, key.name))
        rows = pipe.execute()
        now = self._now()
        paces = self._paces([(key, PaceScope.KEY) for key in keys], now)
        return [
            status_of(key, row, now, pace) for key, row, pace in zip(keys, rows, paces, strict=True)
        ]

    def accounts(self) -> list[AccountStatus]:
        """Every configured account, in configuration order, with its keys and its use of each
        purpose paced per account (``worker keys ls``)."""
        first: dict[tuple[str, str], ApiKey] = {}
        names: dict[tuple[str, str], list[str]] = {}
        for key in self._keys:
            first.setdefault((key.provider, key.account), key)
            names.setdefault((key.provider, key.account), []).append(key.name)
        paces = self._paces([(key, PaceScope.ACCOUNT) for key in first.values()], self._now())
        return [
            AccountStatus(provider, account, tuple(names[(provider, account)]), pace)
            for (provider, account), pace in zip(first, paces, strict=True)
        ]

    def _paces(
        self, units: Sequence[tuple[ApiKey, PaceScope]], now: float
    ) -> list[tuple[Pace, ...]]:
        """For each ``(key, scope)``: the requests in the current window of each of its
        provider's purposes paced with that scope (the key's, or its account's)."""
        wanted: list[list[tuple[str, RateLimit]]] = [
            [
                (purpose, limit)
                for (provider, purpose), limit in self._limits.items()
                if provider == key.provider and self.scope(provider, purpose) is scope
            ]
            for key, scope in units
        ]
        pipe = self._redis.pipeline(transaction=False)
        now_us = round(now * 1e6)
        for (key, _), purposes in zip(units, wanted, strict=True):
            for purpose, limit in purposes:
                cutoff = f"({now_us - round(limit.seconds * 1e6)}"
                pipe.zcount(self._pace(key, purpose), cutoff, "+inf")
        counts = iter(pipe.execute())
        return [
            tuple(Pace(purpose, scope, int(next(counts)), limit) for purpose, limit in purposes)
            for (_, scope), purposes in zip(units, wanted, strict=True)
        ]
