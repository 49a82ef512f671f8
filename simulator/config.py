"""Configuration of the provider simulator.

One tree of dataclasses holds every knob: the happy-path behaviour of each fake provider, its
per-key accounts and the fault rates. The tree round-trips through plain JSON (``to_dict`` /
``from_dict``) so that the same document can come from a file at start-up, from ``POST
/_sim/config`` at run time, or from a test in another process. Unknown keys and out-of-range values
are refused with a ``ValueError`` naming the field: a typo in a chaos test must fail loudly rather
than silently run without the fault it meant to inject.

All defaults mean "no faults": a simulator started without configuration behaves like a healthy
provider with fast renders.

KIE models. Which models exist, their schemas and prices live in ``simulator.kie_models``; each
model answers createTask according to its state (``live``, ``paused``, ``unknown``,
``withdrawn``): its default from that catalog (every ``sora-2*`` is paused, as at KIE since June
2026), overridden by ``kie.withdrawn_models`` and then by ``kie.model_states``. To pause a model
in a running simulator: ``POST /_sim/models/<model>`` ``{"state": "paused"}`` (or patch
``{"kie": {"model_states": {"<model>": "paused"}}}``); ``null`` in ``model_states`` drops the
override. ``GET /_sim/models`` lists every model with its state, price and createTask counts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from simulator.kie_models import MODELS

#: Shapes of a KIE error answer: the code inside an HTTP 200 body, as the HTTP status, or either.
CODE_IN_BODY_MODES = ("body", "status", "mixed")
#: KIE pages disagree on the name of the message field.
MESSAGE_KEY_MODES = ("msg", "message", "mixed")
#: The four ways OpenAI refuses, plus "cycle" which rotates through them.
REFUSAL_MODES = ("http400", "invalid_prompt", "refusal", "content_filter", "cycle")
#: OpenAI's billing codes on a 429 of type ``insufficient_quota``.
QUOTA_CODES = (
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
)
#: KIE endpoints that request-level faults can hit.
KIE_FAULT_ENDPOINTS = ("createTask", "recordInfo", "credit")

#: Model states, as ``simulator.kie_models`` names them.
KIE_MODEL_STATES = ("live", "paused", "unknown", "withdrawn")
DEFAULT_OPENAI_MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o4-mini",
]


@dataclass
class KieKeyConfig:
    """One KIE account, known by its secret.

    ``credits`` is the *live* balance: every accepted task lowers it by its model's price for the
    options sent (a task that fails is given back), so ``GET /_sim/config`` and the credit endpoint
    show what is left and a patch tops it up. ``None`` means unlimited.

    ``account`` groups keys as KIE's accounts do: creates are limited per account (every key of
    it together), queries per key. ``None``: the key is an account of its own.
    """

    credits: float | None = None
    revoked: bool = False
    account: str | None = None


@dataclass
class KieConfig:
    """The KIE "Market" jobs API: createTask, recordInfo, credit and the result files."""

    #: Seconds from createTask to ``success``; 0 means the task is done at once.
    render_seconds: float = 3.0
    #: Each task's render time is ``render_seconds * (1 ± render_jitter)``, drawn at creation.
    render_jitter: float = 0.0
    #: Per-model render time, overriding ``render_seconds`` (jitter still applies).
    model_render_seconds: dict[str, float] = field(default_factory=dict)
    #: Model state overrides, model -> live | paused | unknown | withdrawn (see the docstring).
    model_states: dict[str, str] = field(default_factory=dict)
    #: Models answered like a withdrawn page (see ``unavailable_model_code``).
    withdrawn_models: list[str] = field(default_factory=list)
    #: Code for a withdrawn model: 505 ("feature disabled") as documented, 404 also seen.
    unavailable_model_code: int = 505
    #: Code for a model name KIE does not know: 422, or 404 as in a 2026-09-30 probe.
    unknown_model_code: int = 422
    #: Code for recordInfo of an unknown task: 404 "task not found", or 422 "recordInfo is null"
    #: as observed at KIE.
    unknown_task_code: int = 404
    #: Accounts by secret. Empty: any non-empty bearer token is accepted with unlimited credit.
    #: Non-empty: only these secrets are accepted, every other token gets 401.
    keys: dict[str, KieKeyConfig] = field(default_factory=dict)
    #: ``None``: a task costs its model's price for the options sent; a number: every task
    #: costs that (a demo wanting round figures).
    credits_per_create: float | None = None
    #: A prompt containing this text (case-insensitive) ends in state ``fail`` with failCode 422.
    content_policy_marker: str = "FORBIDDEN"
    #: Sliding-window limits: creates per account (``keys[...].account``), queries per key;
    #: a limit of 0 disables it.
    create_limit: int = 20
    create_window_seconds: float = 10.0
    query_limit: int = 10
    query_window_seconds: float = 1.0
    code_in_body: str = "mixed"
    message_key: str = "mixed"
    result_size_bytes: int = 64 * 1024
    #: Base of result URLs; ``None`` uses the scheme and host the poller used.
    public_url: str | None = None
    timeout_seconds: float = 35.0
    #: Whether a createTask hit by the timeout fault still creates (and charges) the task, as a
    #: real provider may: the client then never learns the task id.
    timeout_creates_task: bool = True
    #: Share of 5xx faults answered with an HTML gateway page instead of a JSON body.
    html_error_share: float = 0.3
    #: Which endpoints the request-level faults (5xx, 429, maintenance, timeout, malformed) hit.
    fault_endpoints: list[str] = field(default_factory=lambda: list(KIE_FAULT_ENDPOINTS))
    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_maintenance: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    #: Decided at creation; the task shows ``fail`` / failCode "500" once its render time passes.
    rate_generation_fail: float = 0.0
    #: Per download: the result file is an HTML error page served with status 200.
    rate_malformed_result: float = 0.0
    #: Callbacks to a task's ``callBackUrl`` when it ends (see ``simulator.callbacks``). False:
    #: never call back, even when createTask asked for it.
    callbacks: bool = True
    #: The account's webhook HMAC key: set, every callback carries ``X-Webhook-Timestamp`` and
    #: ``X-Webhook-Signature``; ``None``, callbacks are unsigned.
    webhook_hmac_key: str | None = None
    #: Seconds between the end of a task and the first POST of its callback.
    callback_delay_seconds: float = 0.0
    #: Seconds one POST may take (connecting included) before it counts as failed.
    callback_timeout_seconds: float = 5.0
    #: Extra POSTs after a non-2xx answer, a connection error or a timeout, 1 s, 2 s, 4 s... apart.
    callback_retries: int = 2
    #: Per task: the callback is never sent.
    rate_callback_lost: float = 0.0
    #: Per task: a delivered callback is POSTed once more, 0.2 to 1 s later.
    rate_callback_duplicate: float = 0.0
    #: Per POST of a signed callback: the signature is a well-formed one of the wrong message.
    rate_callback_bad_signature: float = 0.0


@dataclass
class OpenAIKeyConfig:
    """One OpenAI project key, known by its secret."""

    quota_exhausted: bool = False
    quota_code: str = "insufficient_quota"
    revoked: bool = False


@dataclass
class OpenAIConfig:
    """The OpenAI chat completions endpoint (and ``GET /v1/models``)."""

    #: Empty list: every model name is accepted.
    available_models: list[str] = field(default_factory=lambda: list(DEFAULT_OPENAI_MODELS))
    #: Same rule as KIE: empty accepts any bearer token, non-empty is a closed set.
    keys: dict[str, OpenAIKeyConfig] = field(default_factory=dict)
    content_policy_marker: str = "FORBIDDEN"
    refusal_mode: str = "cycle"
    #: Sent as ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms`` on rate limits.
    retry_after_seconds: float = 1.0
    timeout_seconds: float = 35.0
    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_timeout: float = 0.0


@dataclass
class TelegramConfig:
    """The Telegram Bot API methods the worker uses."""

    #: ``None``: any token is accepted. Otherwise any other token gets 401 "Unauthorized".
    bot_token: str | None = None
    blocked_chats: list[int | str] = field(default_factory=list)
    missing_chats: list[int | str] = field(default_factory=list)
    #: Messages per chat per window; 0 disables the per-chat limit.
    chat_limit: int = 0
    chat_window_seconds: float = 1.0
    #: ``parameters.retry_after`` of an injected 429.
    retry_after_seconds: int = 1
    max_upload_bytes: int = 50 * 1024 * 1024
    timeout_seconds: float = 35.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0


@dataclass
class SimConfig:
    """Everything the simulator does; see the module docstring for how it is loaded and patched."""

    #: Seed of the one ``random.Random`` behind every fault, so a run can be reproduced.
    seed: int | None = None
    #: Recorded calls kept for ``/_sim/calls`` (oldest dropped first); ``/_sim/stats`` counts all.
    max_recorded_calls: int = 100_000
    kie: KieConfig = field(default_factory=KieConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        """Build a configuration from a (possibly partial) dict; missing fields keep defaults."""
        return cls().patched(data)

    @classmethod
    def from_json_file(cls, path: str | Path) -> SimConfig:
        """Load a (possibly partial) configuration from a JSON file."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the configuration must be a JSON object")
        return cls.from_dict(data)

    def patched(self, patch: dict[str, Any]) -> SimConfig:
        """A new configuration: this one deep-merged with ``patch``, then validated.

        Objects merge key by key; any other value replaces. In the ``keys`` maps a ``null`` entry
        removes that key.
        """
        if not isinstance(patch, dict):
            raise ValueError("the configuration patch must be a JSON object")
        merged = deep_merge(self.to_dict(), patch)
        config = _build(SimConfig, merged, "config")
        config.validate()
        return config

    def copy(self) -> SimConfig:
        return copy.deepcopy(self)

    def validate(self) -> None:
        """Refuse values the simulator could not honour, naming the field."""
        sections: dict[str, KieConfig | OpenAIConfig | TelegramConfig] = {
            "kie": self.kie,
            "openai": self.openai,
            "telegram": self.telegram,
        }
        for section, obj in sections.items():
            for f in dataclasses.fields(obj):
                if f.name.startswith("rate_") or f.name in ("render_jitter", "html_error_share"):
                    value = getattr(obj, f.name)
                    if not 0.0 <= value <= 1.0:
                        raise ValueError(f"{section}.{f.name} must be within [0, 1], got {value}")
        _choice("kie.code_in_body", self.kie.code_in_body, CODE_IN_BODY_MODES)
        _choice("kie.message_key", self.kie.message_key, MESSAGE_KEY_MODES)
        _choice("openai.refusal_mode", self.openai.refusal_mode, REFUSAL_MODES)
        for endpoint in self.kie.fault_endpoints:
            _choice("kie.fault_endpoints[]", endpoint, KIE_FAULT_ENDPOINTS)
        for secret, key in self.openai.keys.items():
            _choice(f"openai.keys[{secret[:4]}…].quota_code", key.quota_code, QUOTA_CODES)
        non_negative = {
            "kie.render_seconds": self.kie.render_seconds,
            "kie.credits_per_create": self.kie.credits_per_create or 0,
            "kie.create_limit": self.kie.create_limit,
            "kie.query_limit": self.kie.query_limit,
            "kie.timeout_seconds": self.kie.timeout_seconds,
            "kie.callback_delay_seconds": self.kie.callback_delay_seconds,
            "kie.callback_retries": self.kie.callback_retries,
            "openai.retry_after_seconds": self.openai.retry_after_seconds,
            "openai.timeout_seconds": self.openai.timeout_seconds,
            "telegram.chat_limit": self.telegram.chat_limit,
            "telegram.retry_after_seconds": self.telegram.retry_after_seconds,
            "telegram.timeout_seconds": self.telegram.timeout_seconds,
            "max_recorded_calls": self.max_recorded_calls,
        }
        for name, number in non_negative.items():
            if number < 0:
                raise ValueError(f"{name} must not be negative, got {number}")
        positive = {
            "kie.create_window_seconds": self.kie.create_window_seconds,
            "kie.query_window_seconds": self.kie.query_window_seconds,
            "kie.result_size_bytes": self.kie.result_size_bytes,
            "kie.callback_timeout_seconds": self.kie.callback_timeout_seconds,
            "telegram.chat_window_seconds": self.telegram.chat_window_seconds,
            "telegram.max_upload_bytes": self.telegram.max_upload_bytes,
        }
        for name, number in positive.items():
            if number <= 0:
                raise ValueError(f"{name} must be positive, got {number}")
        if self.kie.webhook_hmac_key == "":
            raise ValueError("kie.webhook_hmac_key must not be empty (null: unsigned callbacks)")
        if not 400 <= self.kie.unavailable_model_code <= 599:
            raise ValueError("kie.unavailable_model_code must be an HTTP error code (400-599)")
        _choice("kie.unknown_model_code", str(self.kie.unknown_model_code), ("404", "422"))
        _choice("kie.unknown_task_code", str(self.kie.unknown_task_code), ("404", "422"))
        for model, state in self.kie.model_states.items():
            _choice(f"kie.model_states[{model}]", state, KIE_MODEL_STATES)
            if state == "live" and model not in MODELS:
                raise ValueError(
                    f"kie.model_states[{model}]: the simulator has no schema for {model!r}, "
                    "so it cannot be live (add it to simulator.kie_models)"
                )
        for model, seconds in self.kie.model_render_seconds.items():
            if seconds < 0:
                raise ValueError(f"kie.model_render_seconds[{model}] must not be negative")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``patch``: nested objects merge, everything else replaces.

    A ``None`` in the patch replaces too (``credits: null`` means unlimited); the ``keys`` maps
    treat a ``None`` entry as "remove this key", handled in ``_build``.
    """
    out = copy.deepcopy(base)
    for key, value in patch.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = deep_merge(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``, checking every field's type against its annotation."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against type ``tp`` (the few shapes used above) and build dataclasses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: unexpected {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return [_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {value!r}")
        return {
            str(k): _convert(args[1], v, f"{where}[{str(k)[:4]}…]")
            for k, v in value.items()
            if v is not None
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported setting type {tp!r}")  # pragma: no cover
