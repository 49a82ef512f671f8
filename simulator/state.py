"""The simulator's memory: tasks, recorded calls and callbacks, messages, rate windows, the dice.

Everything lives in one ``SimState`` owned by the aiohttp application and touched only from its
event loop, so no locks are needed. Task states are computed from timestamps when asked (no timers),
which keeps thousands of in-flight renders free and makes ``render_seconds`` exact. The only timers
are those of callbacks (one loop handle per task that asked for one, see ``simulator.callbacks``);
they live here so that ``reset`` cancels them together with everything else.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from aiohttp import web

from simulator.config import SimConfig

#: Endpoints (route names) that create a task: Market's createTask and Veo's generate.
CREATE_ENDPOINTS = ("createTask", "veoGenerate")

#: Share of a task's render time spent in ``waiting``, then up to this share in ``queuing``.
WAITING_SHARE = 0.10
QUEUING_SHARE = 0.25


class _Record:
    """A recorded call or callback: shown as a dict without its reset ``epoch``."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        del data["epoch"]
        return dict(data)


@dataclass
class Call(_Record):
    """One request to a fake provider, as ``GET /_sim/calls`` shows it.

    ``status`` is ``None`` while the request is still being answered (e.g. inside a timeout fault).
    ``code`` is the provider's own code when it has one: KIE's ``code``, OpenAI's ``error.code``
    (or ``"refusal"`` / ``"content_filter"`` for a 200 refusal), Telegram's ``error_code``.
    ``fault`` names the injected fault, if any.
    """

    seq: int
    at: float
    service: str
    endpoint: str
    http_method: str
    status: int | None = None
    code: int | str | None = None
    key: str | None = None
    task_id: str | None = None
    chat_id: int | str | None = None
    model: str | None = None
    fault: str | None = None
    duration_ms: float | None = None
    #: The reset generation the call belongs to; a call still running across a reset (a timeout
    #: fault asleep) must not count in the stats of the next test.
    epoch: int = field(default=0, repr=False)


@dataclass
class Callback(_Record):
    """One POST of a KIE callback (or one lost callback), as ``GET /_sim/callbacks`` shows it.

    ``attempt`` counts the POSTs of this callback from 1 (retries, then a duplicate); a lost
    callback is recorded once with attempt 0, since nothing is sent. ``status`` is the receiver's
    HTTP status, ``None`` while the POST is in flight, when it failed without an answer (``error``
    says why) or when the callback was lost. ``fault`` is ``None``, ``"lost"``, ``"duplicate"`` or
    ``"bad_signature"``.
    """

    seq: int
    at: float
    task_id: str
    url: str
    attempt: int
    status: int | None = None
    error: str | None = None
    fault: str | None = None
    signed: bool = False
    duration_ms: float | None = None
    #: The reset generation, as for ``Call``.
    epoch: int = field(default=0, repr=False)


@dataclass
class Task:
    """A KIE generation task. Its state is a function of the clock, see ``view``."""

    task_id: str
    model: str
    key: str
    param: str
    prompt: str
    callback_url: str | None
    created: float
    render_seconds: float
    #: Planned failure (failCode, failMsg) and when, in seconds after creation, it shows.
    fail_code: str | None = None
    fail_msg: str | None = None
    fail_after: float = 0.0
    #: Set by the admin API: the task ends now with this state.
    forced_state: str | None = None
    forced_at: float | None = None
    polls: int = 0
    polled_by: list[str] = field(default_factory=list)
    downloads: int = 0
    #: Base of the result URL, fixed at creation: a callback has no request to take it from.
    public_base: str = ""
    #: Callback POSTs attempted for this task.
    callbacks: int = 0
    #: ``market`` (createTask/recordInfo) or ``veo`` (generate/record-info).
    family: str = "market"
    #: What the task costs its account (KIE credits), and whether that is charged now.
    credits: float = 0.0
    charged: bool = False
    #: Veo's answer repeats them; empty when the request left them to their defaults.
    resolution: str = ""
    aspect_ratio: str = ""

    def outcome(self) -> str:
        """How the task ends, as planned now: ``success`` or ``fail``."""
        if self.forced_state is not None:
            return self.forced_state
        return "fail" if self.fail_code is not None else "success"

    def ends_at(self) -> float:
        """When the task reaches ``success`` or ``fail`` (unix seconds), as ``view`` shows it."""
        if self.forced_state is not None and self.forced_at is not None:
            return self.forced_at
        if self.fail_code is not None:
            return self.created + self.fail_after
        return self.created + self.render_seconds

    def view(self, now: float) -> tuple[str, float | None, float]:
        """``(state, complete_time, update_time)`` at ``now``, times in unix seconds."""
        if self.forced_state is not None and self.forced_at is not None and now >= self.forced_at:
            return self.forced_state, self.forced_at, self.forced_at
        if self.fail_code is not None:
            end = self.created + self.fail_after
            if now >= end:
                return "fail", end, end
        end = self.created + self.render_seconds
        if now >= end:
            return "success", end, end
        elapsed = now - self.created
        waiting_end = self.render_seconds * WAITING_SHARE
        queuing_end = self.render_seconds * QUEUING_SHARE
        if elapsed < waiting_end:
            return "waiting", None, self.created
        if elapsed < queuing_end:
            return "queuing", None, self.created + waiting_end
        return "generating", None, self.created + queuing_end

    def to_dict(self, now: float) -> dict[str, Any]:
        state, complete, _ = self.view(now)
        return {
            "task_id": self.task_id,
            "model": self.model,
            "key": self.key,
            "state": state,
            "prompt": self.prompt,
            "callback_url": self.callback_url,
            "created_at": self.created,
            "complete_at": complete,
            "render_seconds": self.render_seconds,
            "fail_code": self.fail_code if state == "fail" else None,
            "fail_msg": self.fail_msg if state == "fail" else None,
            "polls": self.polls,
            "polled_by": list(self.polled_by),
            "downloads": self.downloads,
            "callbacks": self.callbacks,
            "family": self.family,
            "credits": self.credits,
            "charged": self.charged,
        }


class SlidingWindows:
    """Per-name sliding-window counters: at most ``limit`` admissions in any ``window`` seconds.

    Refused requests are not counted, like KIE's "the request does not enter the queue".
    """

    def __init__(self) -> None:
        self._hits: dict[str, collections.deque[float]] = {}

    def admit(self, name: str, limit: int, window: float, now: float) -> float | None:
        """Count one request; ``None`` if admitted, else the seconds until a slot frees up."""
        if limit <= 0:
            return None
        hits = self._hits.setdefault(name, collections.deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return max(hits[0] + window - now, 0.0)
        hits.append(now)
        return None


class SimState:
    """All mutable simulator state, plus the seeded dice behind every fault."""

    def __init__(self, config: SimConfig) -> None:
        config.validate()
        self.initial_config = config.copy()
        self.epoch = 0
        #: Callbacks waiting for their task to end, by task id, and deliveries under way.
        self.callback_timers: dict[str, asyncio.TimerHandle] = {}
        self.callback_jobs: set[asyncio.Task[None]] = set()
        self.reset()

    def reset(self) -> None:
        """Back to the start-up configuration with no tasks, calls, callbacks or messages."""
        self.epoch += 1
        self.cancel_callbacks()
        self.config = self.initial_config.copy()
        self._seed_dice()
        self.tasks: dict[str, Task] = {}
        self.calls: collections.deque[Call] = collections.deque(
            maxlen=self.config.max_recorded_calls
        )
        self.callbacks: collections.deque[Callback] = collections.deque(
            maxlen=self.config.max_recorded_calls
        )
        self.messages: list[dict[str, Any]] = []
        #: Telegram's kept files: file_id -> what was uploaded (a send may name it instead).
        self.telegram_files: dict[str, dict[str, Any]] = {}
        self.windows = SlidingWindows()
        self.call_seq = 0
        self.callback_seq = 0
        #: "attempts", "delivered", "failed" and "lost", as ``stats()["callbacks"]`` shows them.
        self.callback_counts: collections.Counter[str] = collections.Counter()
        self.message_seq = 0
        self.refusal_turn = 0
        self.status_counts: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.code_counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.fault_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.paid_creates = 0
        self.paid_by_key: collections.Counter[str] = collections.Counter()
        #: Create calls (createTask and Veo's generate, whatever the answer) naming each model,
        #: tasks created per model, and the credits charged per model now.
        self.create_calls_by_model: collections.Counter[str] = collections.Counter()
        self.tasks_by_model: collections.Counter[str] = collections.Counter()
        self.credits_by_model: dict[str, float] = {}

    def apply_patch(self, patch: dict[str, Any]) -> None:
        """Deep-merge ``patch`` into the live configuration (all or nothing)."""
        new = self.config.patched(patch)
        reseed = "seed" in patch
        self.config = new
        if reseed:
            self._seed_dice()
        if self.calls.maxlen != new.max_recorded_calls:
            self.calls = collections.deque(self.calls, maxlen=new.max_recorded_calls)
            self.callbacks = collections.deque(self.callbacks, maxlen=new.max_recorded_calls)

    def _seed_dice(self) -> None:
        seed = self.config.seed
        # Faults draw from ``rng``; cosmetic variation ("" or null, msg or message) from ``style``,
        # so switching a style knob never shifts the fault sequence of a seeded run.
        self.rng = random.Random(seed)
        self.style = random.Random(None if seed is None else seed + 1)

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``; rates of 0 and 1 do not consume randomness."""
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self.rng.random() < rate

    def start_call(self, service: str, endpoint: str, http_method: str) -> Call:
        self.call_seq += 1
        call = Call(self.call_seq, time.time(), service, endpoint, http_method, epoch=self.epoch)
        self.calls.append(call)
        return call

    def finish_call(self, call: Call, status: int) -> None:
        call.status = status
        call.duration_ms = round((time.time() - call.at) * 1000, 3)
        if call.epoch != self.epoch:
            return
        self.status_counts[(call.service, call.endpoint, status)] += 1
        if call.code is not None:
            self.code_counts[(call.service, call.endpoint, str(call.code))] += 1
        if call.fault is not None:
            self.fault_counts[(call.service, call.fault)] += 1
        if call.model is not None and call.endpoint in CREATE_ENDPOINTS:
            self.create_calls_by_model[call.model] += 1

    def start_callback(
        self, task: Task, url: str, attempt: int, *, fault: str | None = None, signed: bool = False
    ) -> Callback:
        """Record a callback POST about to be sent, or (``fault="lost"``) one never sent."""
        self.callback_seq += 1
        record = Callback(
            self.callback_seq,
            time.time(),
            task.task_id,
            url,
            attempt,
            fault=fault,
            signed=signed,
            epoch=self.epoch,
        )
        self.callbacks.append(record)
        if fault == "lost":
            self.callback_counts["lost"] += 1
        else:
            task.callbacks += 1
            self.callback_counts["attempts"] += 1
        return record

    def finish_callback(self, record: Callback, status: int | None, error: str | None) -> None:
        record.status, record.error = status, error
        record.duration_ms = round((time.time() - record.at) * 1000, 3)
        if record.epoch != self.epoch:
            return
        delivered = status is not None and 200 <= status < 300
        self.callback_counts["delivered" if delivered else "failed"] += 1

    def cancel_callbacks(self) -> None:
        """Cancel every callback not yet sent and every delivery under way (retries included)."""
        for handle in self.callback_timers.values():
            handle.cancel()
        self.callback_timers.clear()
        for job in self.callback_jobs:
            job.cancel()
        self.callback_jobs.clear()

    def record_paid_create(self, key: str, model: str) -> None:
        self.paid_creates += 1
        self.paid_by_key[key] += 1
        self.tasks_by_model[model] += 1

    def bill(self, task: Task) -> None:
        """Charge ``task`` to its account if it is to succeed, give the credits back if not.

        Called when a task is created and whenever its planned outcome changes (the admin API
        finishing or failing it): a failed task costs nothing, as at KIE.
        """
        charge = task.outcome() == "success"
        if charge == task.charged:
            return
        delta = task.credits if charge else -task.credits
        account = self.config.kie.keys.get(task.key)
        if account is not None and account.credits is not None:
            account.credits = round(account.credits - delta, 4)
        task.charged = charge
        spent = self.credits_by_model.get(task.model, 0.0) + delta
        self.credits_by_model[task.model] = round(spent, 4)

    def stats(self) -> dict[str, Any]:
        """Counts of everything since the last reset (not limited by ``max_recorded_calls``)."""
        calls: dict[str, dict[str, dict[str, int]]] = {}
        for (service, endpoint, status), n in sorted(self.status_counts.items()):
            calls.setdefault(service, {}).setdefault(endpoint, {})[str(status)] = n
        codes: dict[str, dict[str, dict[str, int]]] = {}
        for (service, endpoint, code), n in sorted(self.code_counts.items()):
            codes.setdefault(service, {}).setdefault(endpoint, {})[code] = n
        faults: dict[str, dict[str, int]] = {}
        for (service, fault), n in sorted(self.fault_counts.items()):
            faults.setdefault(service, {})[fault] = n
        now = time.time()
        tasks: collections.Counter[str] = collections.Counter(
            t.view(now)[0] for t in self.tasks.values()
        )
        return {
            "total_calls": sum(self.status_counts.values()),
            "calls": calls,
            "codes": codes,
            "faults": faults,
            "paid_creates": self.paid_creates,
            "paid_creates_by_key": dict(self.paid_by_key),
            "create_calls_by_model": dict(self.create_calls_by_model),
            "tasks_by_model": dict(self.tasks_by_model),
            "credits_by_model": {m: c for m, c in self.credits_by_model.items() if c},
            "tasks": dict(tasks),
            "messages": len(self.messages),
            "callbacks": {
                **{
                    name: self.callback_counts[name]
                    for name in ("attempts", "delivered", "failed", "lost")
                },
                "pending": len(self.callback_timers) + len(self.callback_jobs),
            },
        }


def retry_after_seconds(wait: float) -> int:
    """A wait as the whole seconds a Retry-After style field carries (at least 1)."""
    return max(1, math.ceil(wait))


STATE_KEY = web.AppKey("simulator_state", SimState)
CALL_KEY = web.RequestKey("simulator_call", Call)


def get_state(request: web.Request) -> SimState:
    return request.app[STATE_KEY]


def current_call(request: web.Request) -> Call:
    """The call record of this request (a detached one if the request is not recorded)."""
    call = request.get(CALL_KEY)
    if call is None:
        call = Call(0, time.time(), "", "", request.method)
        request[CALL_KEY] = call
    return call


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or ``None``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


_T = TypeVar("_T")
#: What the simulator's modules keep per state beside it (uploads, files, request logs), with
#: the epoch each was made in.
_ATTACHED: weakref.WeakKeyDictionary[SimState, dict[str, tuple[int, Any]]] = (
    weakref.WeakKeyDictionary()
)


def attached(state: SimState, name: str, factory: Callable[[], _T]) -> _T:
    """The object ``name`` kept beside ``state``, made afresh by ``factory`` after each reset
    (a new epoch), as the state's own records are."""
    kept = _ATTACHED.setdefault(state, {})
    found = kept.get(name)
    if found is None or found[0] != state.epoch:
        found = kept[name] = (state.epoch, factory())
    return cast(_T, found[1])
