"""What a key and an account can do now, as operators read it (``worker keys ls``), and whose
budget a paced purpose draws on. Never carries a secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.config import ApiKey, RateLimit

__all__ = ["AccountStatus", "KeyState", "KeyStatus", "Pace", "PaceScope", "status_of"]


class PaceScope(StrEnum):
    """Whose budget a paced purpose draws on: the key's account (every key of it) or the key."""

    ACCOUNT = "account"
    KEY = "key"


class KeyState(StrEnum):
    """What a key can do now, as operators read it (``worker keys ls``)."""

    ACTIVE = "active"
    COOLING = "cooling"
    QUARANTINED = "quarantined"
    DISABLED = "disabled"


@dataclass(frozen=True)
class KeyStatus:
    """One key's shared state, by name. Never carries the secret."""

    provider: str
    name: str
    account: str
    state: KeyState
    cooling_until: float | None
    reason: str | None
    since: float | None
    last_used: float | None
    uses: int
    errors: int
    last_error: str | None
    #: The key's use of its purposes paced per key (the per-account ones: :class:`AccountStatus`).
    pace: tuple[Pace, ...] = ()


@dataclass(frozen=True)
class Pace:
    """How much of one paced purpose's window a unit (an account or a key) has used now."""

    purpose: str
    scope: PaceScope
    used: int
    limit: RateLimit

    def __str__(self) -> str:
        return f"{self.purpose} {self.used}/{self.limit.count} per {self.limit.seconds:g}s"


@dataclass(frozen=True)
class AccountStatus:
    """One provider account: its keys (configuration order) and its per-account pace now."""

    provider: str
    account: str
    keys: tuple[str, ...]
    pace: tuple[Pace, ...]


def text(value: Any) -> str:
    """A Redis reply as text (the client may or may not decode)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def number(value: Any) -> float | None:
    return None if value is None else float(text(value))


def status_of(
    key: ApiKey, raw: Mapping[Any, Any], now: float, pace: tuple[Pace, ...] = ()
) -> KeyStatus:
    """A key's status from its Redis hash (``raw``, as HGETALL returns it) at ``now``."""
    row = {text(k): text(v) for k, v in raw.items()}
    cooling_until = number(row.get("cooling_until"))
    if cooling_until is not None and cooling_until <= now:
        cooling_until = None
    reason: str | None
    if "disabled_reason" in row:
        state, reason = KeyState.DISABLED, row["disabled_reason"]
        since = number(row.get("disabled_at"))
        if "quarantine_reason" in row:
            reason += f" (also quarantined: {row['quarantine_reason']})"
    elif "quarantine_reason" in row:
        state, reason = KeyState.QUARANTINED, row["quarantine_reason"]
        since = number(row.get("quarantined_at"))
    else:
        state = KeyState.COOLING if cooling_until is not None else KeyState.ACTIVE
        reason, since = None, None
    return KeyStatus(
        provider=key.provider,
        name=key.name,
        account=key.account,
        state=state,
        cooling_until=cooling_until,
        reason=reason,
        since=since,
        last_used=number(row.get("last_used")),
        uses=int(row.get("uses", 0)),
        errors=int(row.get("errors", 0)),
        last_error=row.get("last_error"),
        pace=pace,
    )
