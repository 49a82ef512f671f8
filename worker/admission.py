"""Honest waits at submit: the estimate of when a request's last result arrives, and ``Busy``.

A kind with a bottleneck (``JobKind.gate``: the step where its jobs wait for a provider's paced
create slot, :mod:`worker.fair_gate`) gets an estimate for every request::

    eta = before + ahead / capacity + after

* ``ahead``: the jobs that would pass the gate before the request's last job, in the order the
  new jobs would get (fair: the current round, behind the user's own waiting jobs; or submit
  order), counted from a cached figure of the waiting jobs by priority and turn (at most
  :data:`BACKLOG_TTL_SECONDS` old), plus one indexed query of the user's last waiting turn
  when anything waits at all.
* ``capacity``: the accounts' slots per second, from the provider's declared limit for the
  gate's purpose and the configured keys' accounts, paced as the key pool paces them.
* ``after``: the typical time from the gate to the finished job, the median of the last
  hour's succeeded jobs (cached), else what the kind declares (render and delivery); ``before``
  likewise for submit → gate.

A request whose estimate is over the limit (``ADMISSION_MAX_WAIT_SECONDS``; unset: the job's
deadline minus the kind's declared time after the gate) is refused with :class:`Busy` before
anything is written. The jobs still in the steps before the gate count too, by user (read with
the line; those this process submitted since are added): in a burst most jobs are there.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.config import Settings
from worker.db import Database
from worker.errors import Busy
from worker.keys import PACE_MARGIN
from worker.keystate import PaceScope
from worker.kinds import Gate, JobKind
from worker.metrics import ADMISSION_ETA, BUSY_REFUSALS, GATE_BACKLOG
from worker.sql import gate as q

#: How old the cached backlog may be when a submit reads it.
BACKLOG_TTL_SECONDS = 1.0
#: How long the typical times from history are reused.
HISTORY_TTL_SECONDS = 30.0
#: The history the typical times come from.
HISTORY_SECONDS = 3600.0
#: Succeeded jobs the history needs before its medians replace the declared figures.
HISTORY_MIN_JOBS = 3
#: The gate's window when the purpose is not paced: every waiting job may go.
UNPACED_WIDTH = 1_000_000
#: The gate's window holds the slots the accounts give in this long (about a wake-up's way
#: through Redis and a claim), at least one per account.
WINDOW_SECONDS = 0.25


@dataclass(frozen=True)
class Account:
    """One budget the gate's purpose draws on (an account, or a key where paced per key)."""

    name: str
    keys: int
    per_second: float


@dataclass(frozen=True)
class Capacity:
    """The slots per second the configured accounts allow at a gate (``inf``: not paced, or no
    keys to pace)."""

    provider: str
    accounts: tuple[Account, ...]
    per_second: float

    @property
    def width(self) -> int:
        """How many jobs at the head of the line may ask the key pool at once: one per account,
        or the slots the accounts give in :data:`WINDOW_SECONDS` where that is more (a limit
        that does not hold the line back must not make it wait for wake-ups in a chain);
        everyone when nothing is paced. At the head of a busy line that is one per account,
        so the slots go strictly in the line's order."""
        if math.isinf(self.per_second):
            return UNPACED_WIDTH
        return max(1, len(self.accounts), math.ceil(self.per_second * WINDOW_SECONDS))

    def seconds_for(self, jobs: float) -> float:
        if jobs <= 0 or math.isinf(self.per_second) or self.per_second <= 0:
            return 0.0
        return jobs / self.per_second


def capacity(settings: Settings, kind: JobKind) -> Capacity | None:
    """The gate's capacity (``None``: the kind has no gate)."""
    gate = kind.gate
    if gate is None:
        return None
    provider = next((p for p in kind.providers if p.name == gate.provider), None)
    if provider is None:
        return Capacity(gate.provider, (), math.inf)
    limit = provider.limits(settings).get(gate.purpose)
    scope = provider.scopes.get(gate.purpose, PaceScope.ACCOUNT)
    groups: dict[str, int] = {}
    for key in provider.keys(settings):
        name = key.account if scope is PaceScope.ACCOUNT else key.name
        groups[name] = groups.get(name, 0) + 1
    rate = math.inf if limit is None else limit.count / (limit.seconds * (1 + PACE_MARGIN))
    accounts = tuple(Account(name, n, rate) for name, n in groups.items())
    # No keys: nothing to estimate (such a job fails at once for want of a key, not slowly).
    return Capacity(provider.name, accounts, rate * len(accounts) if accounts else math.inf)


@dataclass(frozen=True)
class Backlog:
    """The jobs waiting at a gate, by priority (highest first) and turn; and the jobs still in
    the steps before it, by user (``coming``: they reach it in a moment, in the current rounds)."""

    levels: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    coming: Mapping[int, int] = field(default_factory=dict)

    def coming_within(self, rounds: int, extra: Mapping[int, int], but: int | None) -> int:
        """The coming jobs that take one of the next ``rounds`` rounds (each user's first
        ``rounds``), ``extra`` added by user, leaving out user ``but``."""
        if rounds <= 0:
            return 0
        users = {**self.coming}
        for user, n in extra.items():
            users[user] = users.get(user, 0) + n
        users.pop(but, None)  # type: ignore[arg-type]
        return sum(min(n, rounds) for n in users.values())

    @property
    def total(self) -> int:
        return sum(n for level in self.levels.values() for _, n in level)

    def above(self, priority: int) -> int:
        return sum(n for p, level in self.levels.items() if p > priority for _, n in level)

    def at(self, priority: int, *, through_turn: float = math.inf) -> int:
        return sum(n for t, n in self.levels.get(priority, ()) if t <= through_turn)

    def round(self, priority: int) -> int:
        """The current round at ``priority``: the smallest turn waiting (0: none waits)."""
        level = self.levels.get(priority, ())
        return level[0][0] if level else 0


@dataclass(frozen=True)
class Estimate:
    """Seconds from now until a request's last job passes the gate (``wait``: what admission
    limits) and until its result is delivered (``eta``: ``SubmitResult.eta_seconds``)."""

    wait: float
    eta: float


@dataclass(frozen=True)
class Typical:
    """Typical seconds from submit to the gate and from the gate to the finished job, from
    history (``None``: too few recent jobs; the kind's declared figures are used)."""

    before: float | None = None
    after: float | None = None


class Admission:
    """The estimates at submit, for one process (thread-safe; cheap: see the module)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        ttl: float = BACKLOG_TTL_SECONDS,
        history_ttl: float = HISTORY_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.db = db
        self.ttl = ttl
        self.history_ttl = history_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._backlog: dict[str, tuple[float, Backlog]] = {}
        self._typical: dict[str, tuple[float, Typical]] = {}
        self._capacity: dict[str, Capacity | None] = {}
        #: Jobs this process submitted since the backlog was read, by kind and user.
        self._extra: dict[str, dict[int, int]] = {}

    # -- cached figures --------------------------------------------------------------------

    def capacity(self, kind: JobKind) -> Capacity | None:
        if kind.name not in self._capacity:
            self._capacity[kind.name] = capacity(self.settings, kind)
        return self._capacity[kind.name]

    def backlog(self, kind: JobKind, *, fresh: bool = False) -> Backlog:
        now = self._clock()
        with self._lock:
            cached = self._backlog.get(kind.name)
            if cached is not None and not fresh and now - cached[0] < self.ttl:
                return cached[1]
            levels: dict[int, list[tuple[int, int]]] = {}
            for r in self.db.fetchall(q.BACKLOG, {"gate": kind.name}):
                levels.setdefault(int(r["priority"]), []).append((int(r["turn"]), int(r["n"])))
            coming = {
                int(r["user_id"]): int(r["n"])
                for r in self.db.fetchall(
                    q.COMING, {"kind": kind.name, "before": _before_gate(kind)}
                )
            }
            backlog = Backlog({p: tuple(level) for p, level in levels.items()}, coming)
            self._backlog[kind.name] = (now, backlog)
            self._extra[kind.name] = {}
        self._export(kind, backlog)
        return backlog

    def typical(self, kind: JobKind) -> Typical:
        now = self._clock()
        with self._lock:
            cached = self._typical.get(kind.name)
            if cached is not None and now - cached[0] < self.history_ttl:
                return cached[1]
            row = self.db.fetchone(q.HISTORY, {"gate": kind.name, "seconds": HISTORY_SECONDS})
            typical = Typical()
            if row is not None and int(row["succeeded"] or 0) >= HISTORY_MIN_JOBS:
                typical = Typical(_float(row["before_s"]), _float(row["after_s"]))
            self._typical[kind.name] = (now, typical)
        return typical

    def _export(self, kind: JobKind, backlog: Backlog) -> None:
        cap = self.capacity(kind)
        if kind.gate is None or cap is None:
            return
        GATE_BACKLOG.labels(kind=kind.name, provider=cap.provider).set(backlog.total)
        now = self._estimate(kind, kind.gate, cap, backlog, {}, count=1, last_turn=None)
        ADMISSION_ETA.labels(kind=kind.name).set(min(now.eta, 1e9))

    # -- the estimate ----------------------------------------------------------------------

    def after_seconds(self, kind: JobKind, payload: Mapping[str, Any]) -> float:
        """Typical seconds from the gate to the finished job: history, else the declaration."""
        assert kind.gate is not None
        after = self.typical(kind).after
        return after if after is not None else kind.gate.after_seconds(self.settings, payload)

    def estimate(
        self,
        kind: JobKind,
        payload: Mapping[str, Any],
        *,
        count: int = 1,
        user_id: int | None = None,
    ) -> Estimate | None:
        """When the last of ``count`` new jobs would pass the gate and be done (``None``: the
        kind has no gate, so nothing is estimated)."""
        gate, cap = kind.gate, self.capacity(kind)
        if gate is None or cap is None:
            return None
        if math.isinf(cap.per_second):  # nothing paces the gate: no line to read
            return self._estimate(kind, gate, cap, Backlog(), payload, count=count, last_turn=None)
        backlog = self.backlog(kind)
        last_turn = None
        priority = gate.priority(self.settings, payload)
        if user_id is not None and self.settings.fair_order and backlog.at(priority):
            row = self.db.fetchone(
                q.USER_LAST_TURN, {"gate": kind.name, "user_id": user_id, "priority": priority}
            )
            last_turn = int(row["turn"]) if row is not None else None
        return self._estimate(
            kind, gate, cap, backlog, payload, count=count, last_turn=last_turn, user_id=user_id
        )

    def submitted(self, kind: JobKind, user_id: int, count: int) -> None:
        """Count jobs this process just submitted until the backlog is read again."""
        with self._lock:
            extra = self._extra.setdefault(kind.name, {})
            extra[user_id] = extra.get(user_id, 0) + count

    def _estimate(
        self,
        kind: JobKind,
        gate: Gate,
        cap: Capacity,
        backlog: Backlog,
        payload: Mapping[str, Any],
        *,
        count: int,
        last_turn: int | None,
        user_id: int | None = None,
    ) -> Estimate:
        priority = gate.priority(self.settings, payload)
        extra = dict(self._extra.get(kind.name, {}))
        own = backlog.coming.get(user_id, 0) + extra.get(user_id, 0) if user_id else 0
        if self.settings.fair_order:
            round_ = backlog.round(priority)
            first = max(round_, last_turn + 1 if last_turn is not None else 0) + own
            last = first + count - 1
            ahead = backlog.above(priority) + backlog.at(priority, through_turn=last) + own
            ahead += backlog.coming_within(last - round_ + 1, extra, user_id)
        else:
            ahead = backlog.above(priority) + backlog.at(priority) + own
            ahead += backlog.coming_within(10**9, extra, user_id)
        typical = self.typical(kind)
        before = typical.before if typical.before is not None else gate.before_seconds
        wait = before + cap.seconds_for(ahead + count - 1)
        return Estimate(round(wait, 1), round(wait + self.after_seconds(kind, payload), 1))

    def max_wait(self, kind: JobKind, payload: Mapping[str, Any]) -> float | None:
        """The admission limit on the wait for the gate: ``ADMISSION_MAX_WAIT_SECONDS``, else the
        job's deadline less the kind's declared time after the gate, so that an admitted job is
        expected to end before its deadline. ``None`` (no limit) when that deadline is shorter
        than the declared time itself: the operator expects faster work than the declaration
        (or tests a deadline), and refusing every request would be an outage."""
        if self.settings.admission_max_wait_seconds is not None:
            return self.settings.admission_max_wait_seconds
        after = kind.gate.after_seconds(self.settings, payload) if kind.gate else 0.0
        limit = kind.deadline(self.settings, payload) - after
        return limit if limit > 0 else None

    def admit(
        self,
        kind: JobKind,
        payload: Mapping[str, Any],
        *,
        count: int,
        user_id: int,
        replay: Callable[[], bool] = lambda: False,
    ) -> float | None:
        """The ETA of a new request, or :class:`Busy` when its wait for the gate is over the
        limit (unless ``replay()`` says the request was already accepted: its replay)."""
        estimate = self.estimate(kind, payload, count=count, user_id=user_id)
        if estimate is None:
            return None
        limit = self.max_wait(kind, payload)
        if limit is not None and estimate.wait > limit and not replay():
            BUSY_REFUSALS.labels(kind=kind.name).inc()
            raise Busy(kind.name, estimate.eta, limit, wait_seconds=estimate.wait)
        return estimate.eta

    # -- what operators read ---------------------------------------------------------------

    def report(self, kind: JobKind) -> dict[str, Any] | None:
        """The gate's figures for `worker jobs stats` and `worker doctor` (``None``: no gate):
        the jobs waiting, each account's create capacity, the time to clear the backlog, the
        users' waits (submit → gate passed, last hour), the estimate a new one-job request
        would get now and the limit it is held to."""
        gate, cap = kind.gate, self.capacity(kind)
        if gate is None or cap is None:
            return None
        backlog = self.backlog(kind, fresh=True)
        waits = self.db.fetchone(q.WAITS, {"gate": kind.name, "seconds": HISTORY_SECONDS}) or {}
        limit = self.max_wait(kind, {})
        now = self._estimate(kind, gate, cap, backlog, {}, count=1, last_turn=None)
        return {
            "provider": cap.provider,
            "purpose": gate.purpose,
            "fair_order": self.settings.fair_order,
            "waiting": backlog.total,
            "waiting_by_priority": {
                str(p): backlog.at(p) for p in sorted(backlog.levels, reverse=True)
            },
            "accounts": [
                {"account": a.name, "keys": a.keys, "per_minute": _finite(a.per_second * 60)}
                for a in cap.accounts
            ],
            "per_minute": _finite(cap.per_second * 60),
            "clear_seconds": round(cap.seconds_for(backlog.total), 1),
            "waits_last_hour": {
                "jobs": int(waits.get("n") or 0),
                "p50_seconds": _rounded(waits.get("p50")),
                "p95_seconds": _rounded(waits.get("p95")),
                "max_seconds": _rounded(waits.get("max")),
            },
            "eta_seconds": now.eta,
            "wait_seconds": now.wait,
            "max_wait_seconds": limit,
            "creatable_before_deadline": (
                None if limit is None else _finite(cap.per_second * limit)
            ),
        }


def _before_gate(kind: JobKind) -> list[str]:
    """The kind's steps before its gate."""
    assert kind.gate is not None
    return list(kind.steps[: kind.steps.index(kind.gate.step)])


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 1)


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
