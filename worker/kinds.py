"""Job kinds: what the framework needs to know about a kind of job, and where to find them.

A kind is a module in the ``jobs`` package exposing ``KIND`` (a :class:`JobKind`). The framework
finds kinds by name, so adding one is adding a module, not editing ``worker/``. The step
handlers are loaded separately (``JobKind.handlers``), so the bot's process, which only submits,
never imports provider clients.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker.errors import WorkerError

if TYPE_CHECKING:
    from pathlib import Path

    from worker.config import ApiKey, KindSettings, RateLimit, Settings
    from worker.db import Database
    from worker.keystate import PaceScope
    from worker.models import ResourceGroup
    from worker.outcomes import StepHandler
    from worker.texts import Catalogue
    from worker.webhooks import Webhook

JOBS_PACKAGE = "jobs"


class UnknownKind(WorkerError):
    pass


def _no_limits(settings: Settings) -> Mapping[str, RateLimit]:
    return {}


@dataclass(frozen=True)
class Provider:
    """A paid service a kind's steps call, with its keys in one variable.

    The key pool (``worker.keys``), `worker doctor` and `worker keys` know a provider only
    through this declaration: ``name`` is how keys, cooldowns and metrics are filed, ``label``
    how an operator writes it, ``keys`` the parsed keys of ``keys_variable``, and ``limits``
    the request pacing per purpose (``{"create": 20/10s}``; a purpose not listed is not paced).
    ``scopes`` says whose budget a paced purpose draws on: the key's account (the default:
    every key of one account together) or the key alone (``{"query": PaceScope.KEY}``).
    """

    name: str
    label: str
    keys_variable: str
    keys: Callable[[Settings], tuple[ApiKey, ...]]
    limits: Callable[[Settings], Mapping[str, RateLimit]] = _no_limits
    scopes: Mapping[str, PaceScope] = field(default_factory=dict)
    #: Loggers of its client library, kept at WARNING (they may log request URLs and headers).
    loggers: tuple[str, ...] = ()
    #: What the key's account has left at the provider, for ``worker_provider_balance``
    #: (read by the maintenance leader every few minutes: ``worker.balance_watch``).
    balance: Callable[[Settings, ApiKey], float] | None = None


def _reason_only(
    settings: Settings | None, payload: Mapping[str, Any], user_message: str, price: int
) -> str:
    from worker.texts import FRAMEWORK

    return FRAMEWORK.reason(settings, payload.get("language"), user_message)


@dataclass(frozen=True)
class KindTexts:
    """The user-facing texts a kind declares, in every language it speaks.

    ``failure(settings, payload, user_message, price)`` is the one message a user gets when a
    job fails, in the language of ``payload["language"]``: ``user_message`` says why (from the
    error, in English; the kind translates it), ``price`` is the credits refunded (0: none).
    A kind that declares nothing sends the reason alone. ``catalogue`` holds the kind's texts
    (``worker.texts``): the operator's ``MESSAGES_FILE`` overrides them by its name.
    """

    failure: Callable[[Settings | None, Mapping[str, Any], str, int], str] = _reason_only
    catalogue: Catalogue | None = None


@dataclass(frozen=True)
class RequestTally:
    """How the jobs of one request ended, for its summary message (``JobKind.summary``).

    ``refunded`` is the credits the ledger gave back for its failed and cancelled jobs;
    ``button_job`` the job a "make another" button points at: the last that succeeded, else the
    first."""

    total: int
    succeeded: int
    failed: int
    cancelled: int
    refunded: int
    button_job: int


@dataclass(frozen=True)
class Message:
    """A message a kind writes for the framework to send: its text (plain, no parse mode) and
    an optional ``reply_markup`` (``worker.telegram.inline_keyboard``)."""

    text: str
    reply_markup: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DoctorOption:
    """A `worker doctor` option a kind's key checks take: ``--flag`` on the command line, the
    keyword ``name`` in the checks (e.g. the balance below which an account gets a warning)."""

    name: str
    flag: str
    default: float
    help: str


def _no_priority(settings: Settings, payload: Mapping[str, Any]) -> int:
    return 0


def _nothing_after(settings: Settings, payload: Mapping[str, Any]) -> float:
    return 0.0


@dataclass(frozen=True)
class Gate:
    """A kind's bottleneck: the step where its jobs wait for a provider's paced ``purpose``
    (``worker.fair_gate``). Jobs pass in fair order (round-robin across users, each user's own
    in order), ``priority`` first (higher first). ``after_seconds`` is the typical time from the
    gate to the finished job (render, delivery) and ``before_seconds`` from submit to the gate,
    when recent history has no figure (``worker.admission``)."""

    step: str
    provider: str
    purpose: str
    priority: Callable[[Settings, Mapping[str, Any]], int] = _no_priority
    after_seconds: Callable[[Settings, Mapping[str, Any]], float] = _nothing_after
    before_seconds: float = 0.0

    def holds(self, step: str, provider: str, purpose: str) -> bool:
        """Whether a key of ``provider`` for ``purpose`` taken at ``step`` goes through it."""
        return (step, provider, purpose) == (self.step, self.provider, self.purpose)


@dataclass(frozen=True)
class JobKind:
    """Static description of a job kind.

    ``validate`` turns a caller's request into the stored payload or raises
    :class:`worker.errors.InvalidRequest`; ``price`` is credits per job (it may depend on the
    validated payload, e.g. the tier it names); ``deadline`` is the
    seconds a job may take end to end; ``handlers`` names the module whose ``HANDLERS`` maps each
    step to its function (imported only by workers).
    """

    name: str
    steps: tuple[str, ...]
    validate: Callable[[Mapping[str, Any], Settings], dict[str, Any]]
    price: Callable[[Settings, Mapping[str, Any]], int]
    deadline: Callable[[Settings, Mapping[str, Any]], float]
    handlers_module: str
    #: What the kind says to its users (the framework has no words of its own for them).
    texts: KindTexts = KindTexts()
    #: The kind's own settings (read like the framework's; see ``worker.config.kind_settings``).
    settings_model: type[KindSettings] | None = None
    #: The paid services its steps call (keys, pacing); several kinds may share one.
    providers: tuple[Provider, ...] = ()
    #: Module whose ``SCENARIO`` (``worker.demo.DemoScenario``) is the kind's part of
    #: `worker demo`; imported only by that command.
    demo_module: str | None = None
    #: Module whose ``COMMANDS`` (click commands) `worker` adds, e.g. one that submits a job of
    #: this kind from the shell; imported only by the command line.
    cli_module: str | None = None
    #: `worker doctor` options its key checks take.
    doctor_options: tuple[DoctorOption, ...] = ()
    #: The largest file one job may store, and how to say it (``(500 MiB, "one clip")``):
    #: `worker doctor` fails when STORAGE_DIR has less free space.
    largest_file: Callable[[Settings], tuple[int, str]] | None = None
    #: The job counts one request may ask for (``None``: any count the client accepts).
    counts: Callable[[Settings], tuple[int, ...]] | None = None
    #: The request that makes a job like a stored one again (clone, retry): by default the
    #: payload itself, which ``validate`` must accept back.
    request_of: Callable[[Mapping[str, Any]], dict[str, Any]] = dict
    #: The resources its steps choose among and pause (e.g. a provider's models), shared by
    #: every worker (``worker.models``); `worker models` lists and switches them.
    resources: ResourceGroup | None = None
    #: Module whose ``KEY_CHECKS`` maps a provider to the `worker doctor` check of one key.
    key_checks_module: str | None = None
    #: Module whose ``WEBHOOKS`` lists the kind's provider callbacks (``worker.webhooks``),
    #: served by `worker webhooks`; imported only there and by `worker doctor`.
    webhooks_module: str | None = None
    #: Timeline events that end a step (event → step), for `worker jobs stats` durations.
    step_events: Mapping[str, str] = field(default_factory=dict)
    #: Removes the kind's files that several jobs share, once no job needs them for the
    #: retention: ``(STORAGE_DIR, db, retention seconds, dry run) → (files, bytes)``.
    #: A job's own files are the framework's to prune (``worker.retention``).
    prune_shared: Callable[[Path, Database, float, bool], tuple[int, int]] | None = None
    #: The one message a request of several jobs gets once its last job ended
    #: (``(settings, the payload of the tally's button job, tally) → Message``), sent through
    #: the outbox at most once (``worker.notifications``); none: no summary is sent.
    summary: Callable[[Settings | None, Mapping[str, Any], RequestTally], Message] | None = None
    #: The bottleneck its jobs wait at, in fair order (``worker.fair_gate``); none: no gate.
    gate: Gate | None = None

    def failure_text(
        self,
        payload: Mapping[str, Any],
        user_message: str,
        price: int,
        settings: Settings | None = None,
    ) -> str:
        """The one message a user gets when a job fails (the kind's words, in the language of
        the job's payload; ``settings`` brings the operator's overrides and default language)."""
        return self.texts.failure(settings, payload, user_message, price)

    @property
    def first_step(self) -> str:
        return self.steps[0]

    @property
    def queue(self) -> str:
        """The Dramatiq queue of every step of this kind: ``report``. One queue per kind, not per
        step: each queue costs every worker process two consumer threads that poll Redis."""
        return self.name

    def actor(self, step: str) -> str:
        """The Dramatiq actor of one step: ``report.analyse``."""
        return f"{self.name}.{step}"

    def key_checks(self) -> Mapping[str, Callable[..., Any]]:
        if self.key_checks_module is None:
            return {}
        checks: Mapping[str, Callable[..., Any]] = importlib.import_module(
            self.key_checks_module
        ).KEY_CHECKS
        return checks

    def webhooks(self) -> tuple[Webhook, ...]:
        """The provider callbacks this kind declares (served by `worker webhooks`)."""
        if self.webhooks_module is None:
            return ()
        return tuple(importlib.import_module(self.webhooks_module).WEBHOOKS)

    def commands(self) -> list[Any]:
        """The kind's `worker` commands (click commands)."""
        if self.cli_module is None:
            return []
        return list(importlib.import_module(self.cli_module).COMMANDS)

    def handlers(self) -> Mapping[str, StepHandler]:
        module = importlib.import_module(self.handlers_module)
        handlers: Mapping[str, StepHandler] = module.HANDLERS
        missing = set(self.steps) - set(handlers)
        if missing:
            raise WorkerError(f"job kind {self.name} has no handler for steps {sorted(missing)}")
        return handlers


_cache: dict[str, JobKind] = {}


def get_kind(name: str) -> JobKind:
    if name not in _cache:
        if not name.isidentifier():
            raise UnknownKind(f"unknown job kind {name!r}")
        try:
            module = importlib.import_module(f"{JOBS_PACKAGE}.{name}")
        except ModuleNotFoundError:
            raise UnknownKind(f"unknown job kind {name!r}") from None
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, JobKind):
            raise UnknownKind(f"{JOBS_PACKAGE}.{name} does not define KIND")
        _cache[name] = kind
    return _cache[name]


def all_kinds() -> list[JobKind]:
    """Every kind in the ``jobs`` package."""
    package = importlib.import_module(JOBS_PACKAGE)
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )
    kinds = []
    for name in names:
        try:
            kinds.append(get_kind(name))
        except UnknownKind:
            continue
    return kinds


def all_providers() -> list[Provider]:
    """Every provider the kinds declare, each once (by name), in declaration order."""
    found: dict[str, Provider] = {}
    for kind in all_kinds():
        for provider in kind.providers:
            found.setdefault(provider.name, provider)
    return list(found.values())


def keys_for(settings: Settings, provider: str) -> tuple[ApiKey, ...]:
    """The configured keys of ``provider`` (none for a provider no kind declares)."""
    for declared in all_providers():
        if declared.name == provider:
            return declared.keys(settings)
    return ()
