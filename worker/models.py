"""Switches for the resources a kind's steps choose among (e.g. a provider's models), shared by
every worker process in Redis, like the key pool's cooldowns.

A kind declares its switchable resources (``JobKind.resources``); its steps ask
:meth:`ResourceSwitches.blocked` before using one, :meth:`pause` one when the provider proves it
cannot serve (for a while, for every worker, extend-only), and `worker models` shows and flips
them. The framework knows only names, states and reasons: what a resource is, and what proves
it paused, is the kind's business.

States: ``live``; ``paused`` until a time (set by a step, ends by itself); ``disabled`` by an
operator until enabled again. Every state change and the last error are kept per resource.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis import Redis

from worker.redaction import redact

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = ["ResourceGroup", "ResourceState", "ResourceStatus", "ResourceSwitches"]

MAX_REASON_CHARS = 300

# KEYS[1] = the resource's hash. ARGV: reason, seconds. Extends a pause, never shortens it;
# returns 1 when the resource was live before (the caller alerts once per pause, not per job).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local until_ = now + tonumber(ARGV[2])
local old = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0')
local was_live = (old <= now) and 1 or 0
if until_ > old then
  redis.call('HSET', KEYS[1], 'paused_until', tostring(until_))
end
if was_live == 1 then
  redis.call('HSET', KEYS[1], 'paused_at', tostring(now))
  redis.call('HINCRBY', KEYS[1], 'pauses', 1)
end
redis.call('HSET', KEYS[1], 'pause_reason', ARGV[1], 'last_error', ARGV[1],
           'last_error_at', tostring(now))
return was_live
"""


@dataclass(frozen=True)
class ResourceGroup:
    """What a kind declares (``JobKind.resources``): the group its switches are filed under,
    what one resource is called (``model``), and the names there are."""

    name: str
    noun: str
    names: Callable[[Settings], Sequence[str]]

    def switches(self, redis: Redis, settings: Settings) -> ResourceSwitches:
        return ResourceSwitches(redis, settings.redis_namespace, self.name)


class ResourceState(enum.StrEnum):
    LIVE = "live"
    PAUSED = "paused"
    DISABLED = "disabled"


@dataclass(frozen=True)
class ResourceStatus:
    """One resource's state as every worker sees it."""

    name: str
    state: ResourceState
    #: When a pause ends (epoch seconds); None unless paused.
    until: float | None
    #: Why it is paused or disabled.
    reason: str | None
    #: When it was paused or disabled.
    since: float | None
    pauses: int
    last_error: str | None
    last_error_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": str(self.state),
            "until": self.until,
            "reason": self.reason,
            "since": self.since,
            "pauses": self.pauses,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class ResourceSwitches:
    """The shared switches of one group of resources (``group``: e.g. ``<kind>-models``)."""

    def __init__(self, redis: Redis, namespace: str, group: str) -> None:
        self._redis = redis
        self._prefix = f"{namespace}:resources:{group}"
        self._pause = redis.register_script(_PAUSE)

    def _hash(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _now(self) -> float:
        seconds, micros = self._redis.time()
        return float(seconds) + float(micros) / 1e6

    # -- what steps do ---------------------------------------------------------------------

    def pause(self, name: str, reason: str, seconds: float) -> bool:
        """Pause ``name`` for ``seconds`` for every worker (extend-only). True when it was live
        before, so exactly one of the workers that saw it fail raises the alert."""
        text = redact(reason)[:MAX_REASON_CHARS]
        return bool(self._pause(keys=[self._hash(name)], args=[text, max(0.0, seconds)]))

    def blocked(self, names: Iterable[str]) -> dict[str, ResourceStatus]:
        """The resources among ``names`` that must not be used now, by name."""
        return {s.name: s for s in self.statuses(list(names)) if s.state is not ResourceState.LIVE}

    def note_error(self, name: str, error: str) -> None:
        """Remember the last error of ``name`` without changing its state."""
        self._redis.hset(
            self._hash(name),
            mapping={
                "last_error": redact(error)[:MAX_REASON_CHARS],
                "last_error_at": str(self._now()),
            },
        )

    # -- what operators do -----------------------------------------------------------------

    def disable(self, name: str, reason: str = "disabled by an operator") -> ResourceStatus:
        self._redis.hset(
            self._hash(name),
            mapping={
                "disabled_reason": redact(reason)[:MAX_REASON_CHARS],
                "disabled_at": str(self._now()),
            },
        )
        return self.status(name)

    def enable(self, name: str) -> ResourceStatus:
        """Live again at once: clears an operator's disable and any pause."""
        self._redis.hdel(self._hash(name), "disabled_reason", "disabled_at", "paused_until")
        return self.status(name)

    # -- reading ---------------------------------------------------------------------------

    def status(self, name: str) -> ResourceStatus:
        return self.statuses([name])[0]

    def statuses(self, names: Sequence[str]) -> list[ResourceStatus]:
        if not names:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._hash(name))
        raws = pipe.execute()
        now = self._now()
        return [_status(n, raw, now) for n, raw in zip(names, raws, strict=True)]


def _text(raw: dict[Any, Any], field: str) -> str | None:
    value = raw.get(field.encode(), raw.get(field))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(raw: dict[Any, Any], field: str) -> float | None:
    value = _text(raw, field)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _status(name: str, raw: dict[Any, Any], now: float) -> ResourceStatus:
    disabled = _text(raw, "disabled_reason")
    until = _float(raw, "paused_until")
    reason: str | None = None
    since: float | None = None
    if disabled is not None:
        state, reason, since, until = (
            ResourceState.DISABLED,
            disabled,
            _float(raw, "disabled_at"),
            None,
        )
    elif until is not None and until > now:
        state, reason, since = (
            ResourceState.PAUSED,
            _text(raw, "pause_reason"),
            _float(raw, "paused_at"),
        )
    else:
        state, until = ResourceState.LIVE, None
    return ResourceStatus(
        name=name,
        state=state,
        until=until,
        reason=reason,
        since=since,
        pauses=int(_float(raw, "pauses") or 0),
        last_error=_text(raw, "last_error"),
        last_error_at=_float(raw, "last_error_at"),
    )
