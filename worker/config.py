"""Configuration from the environment, an optional ``.env`` file and systemd credentials.

Every variable of CONTRACT.md is a field here. A wrong value stops the program with one sentence
that names the variable and says what is expected (:class:`worker.errors.ConfigError`); secret
values never appear in that sentence, in ``repr()`` or in logs.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigError
from worker.redaction import register_secrets

#: Variables whose value may instead come from a file in ``$CREDENTIALS_DIRECTORY``.
CREDENTIAL_VARIABLES = (
    "KIE_API_KEYS",
    "OPENAI_API_KEYS",
    "TELEGRAM_BOT_TOKEN",
    "SENTRY_DSN",
    "KIE_WEBHOOK_HMAC_KEY",
)

_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """One provider key: known everywhere by ``name``; ``secret`` is only sent to the provider."""

    provider: str
    name: str
    secret: SecretStr = field(repr=False)

    def __repr__(self) -> str:
        return f"ApiKey(provider={self.provider!r}, name={self.name!r})"


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` requests per ``seconds`` window."""

    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


def key_name_for(secret: str) -> str:
    """The name of a key given as a bare secret: a short, stable hash that reveals nothing."""
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def parse_keys(provider: str, variable: str, raw: str) -> tuple[ApiKey, ...]:
    """Parse ``name=secret,secret2`` (commas or newlines) into keys; names must be unique."""
    keys: list[ApiKey] = []
    entries = [e.strip() for e in re.split(r"[,\n]", raw)]
    if raw.strip() and not any(entries):
        raise ConfigError(f"{variable} must list keys as name=secret or bare secrets")
    for index, entry in enumerate(entries, start=1):
        if not entry:
            if raw.strip() and index < len(entries):
                raise ConfigError(
                    f"{variable} has an empty entry at position {index}; "
                    "expected comma-separated keys, each name=secret or a bare secret"
                )
            continue
        if "=" in entry:
            name, _, secret = entry.partition("=")
            name, secret = name.strip(), secret.strip()
            if not _KEY_NAME.match(name):
                raise ConfigError(
                    f"{variable} entry {index} has an invalid key name; expected letters, digits, "
                    "'.', '_' or '-' (at most 64) before '='"
                )
        else:
            secret = entry
            name = key_name_for(secret)
        if not secret or any(c.isspace() for c in secret):
            raise ConfigError(
                f"{variable} entry {index} ({name}) has an empty or malformed secret after '='"
            )
        if any(k.name == name for k in keys):
            raise ConfigError(f"{variable} names the key {name!r} twice; key names must be unique")
        keys.append(ApiKey(provider=provider, name=name, secret=SecretStr(secret)))
    return tuple(keys)


def _parse_rate(variable: str, raw: str) -> RateLimit:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*", raw)
    if not m or int(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise ConfigError(
            f"{variable} must be a rate such as 20/10 (20 requests per 10 seconds), got {raw!r}"
        )
    return RateLimit(int(m.group(1)), float(m.group(2)))


def _check_url(
    variable: str, value: str, schemes: tuple[str, ...], *, hostless: bool = False
) -> str:
    """``value`` if it is a URL of one of ``schemes`` with a host (``unix://`` needs none; with
    ``hostless``, none is needed either: libpq then connects to its default Unix socket, or to
    the ``host=`` of the query string, e.g. ``postgresql:///worker?host=/var/run/postgresql``)."""
    try:
        parts = urlsplit(value)
        has_host = bool(parts.hostname) or parts.scheme == "unix" or hostless
        ok = parts.scheme in schemes and has_host
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError:
        ok = False
    if not ok:
        try:
            shown = repr(_mask_url_password(value))
        except ValueError:
            shown = "a value that is not a URL"
        raise ValueError(
            f"{variable} must be a {' or '.join(s + '://' for s in schemes)} URL, got {shown}"
        )
    return value


class Settings(BaseSettings):
    """All settings. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `METRICS_PORT=` in an environment file means "not set"
    )

    database_url: str = "postgresql://postgres@127.0.0.1:5432/worker"
    db_pool_min: int = Field(2, ge=1)
    db_pool_max: int = Field(10, ge=1)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = Field("worker", pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    kie_api_keys: SecretStr = SecretStr("")
    kie_base_url: str = "https://api.kie.ai"
    kie_model: str = "sora-2-image-to-video"
    kie_aspect_ratio: str = Field("portrait", pattern=r"^(portrait|landscape)$")
    kie_n_frames: str = Field("10", pattern=r"^(10|15)$")
    kie_remove_watermark: bool = True
    kie_size: str | None = Field(None, pattern=r"^(standard|high)$")
    #: Where KIE is told to call when a task ends (``callBackUrl``): the public address of
    #: `worker webhooks`. Unset: no callbacks, KIE's polling schedule alone.
    kie_callback_url: str | None = None
    #: KIE's ``webhookHmacKey``: callbacks must then carry a valid signature.
    kie_webhook_hmac_key: SecretStr = SecretStr("")
    #: With callbacks on, a video still rendering is polled this often (callbacks can be lost).
    kie_safety_poll_seconds: float = Field(120.0, gt=0)
    kie_create_limit: str = "20/10"
    kie_query_limit: str = "10/1"
    kie_timeout: float = Field(30.0, gt=0)
    #: The first poll waits at least this long after createTask (0: KIE's schedule, 2–3 s).
    kie_first_poll_seconds: float = Field(0.0, ge=0)

    openai_api_keys: SecretStr = SecretStr("")
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    openai_timeout: float = Field(30.0, gt=0)

    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"
    telegram_timeout: float = Field(60.0, gt=0)

    video_price_credits: int = Field(1, ge=0)
    video_counts: str = "1,3,5"
    video_deadline_seconds: float = Field(1800.0, gt=0)
    video_deadlines: str = ""
    progress_after_seconds: float = Field(300.0, gt=0)
    max_video_bytes: int = Field(500 * 1024 * 1024, gt=0)
    report_price_credits: int = Field(0, ge=0)

    #: Where `worker webhooks` listens (the proxy in front of it serves KIE_CALLBACK_URL).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(8088, ge=1, le=65535)

    storage_dir: Path = Path("storage")
    storage_retention_days: float = Field(14.0, ge=0)
    sentry_dsn: SecretStr = SecretStr("")
    metrics_port: int | None = Field(None, ge=1, le=65535)

    worker_threads: int = Field(8, ge=1, le=256)
    idle_poll_ms: int = Field(50, ge=10, le=5000)
    lease_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    backoff_base_seconds: float = Field(2.0, gt=0)
    backoff_max_seconds: float = Field(120.0, gt=0)
    drain_seconds: float = Field(60.0, gt=0)
    maintenance_interval_seconds: float = Field(5.0, gt=0)
    redispatch_after_seconds: float = Field(30.0, gt=0)
    max_rescues: int = Field(3, ge=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        return _check_url("DATABASE_URL", v, ("postgresql", "postgres"), hostless=True)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        return _check_url("REDIS_URL", v, ("redis", "rediss", "unix"))

    @field_validator("kie_base_url", "openai_base_url", "telegram_api_url")
    @classmethod
    def _http_url(cls, v: str, info: Any) -> str:
        return _check_url(str(info.field_name).upper(), v.rstrip("/"), ("http", "https"))

    @field_validator("kie_callback_url")
    @classmethod
    def _callback_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        checked = _check_url("KIE_CALLBACK_URL", v.strip(), ("http", "https"))
        if urlsplit(checked).fragment:
            raise ValueError("KIE_CALLBACK_URL must not have a #fragment")
        return checked

    @field_validator("video_counts")
    @classmethod
    def _counts(cls, v: str) -> str:
        try:
            counts = [int(x) for x in v.split(",") if x.strip()]
        except ValueError:
            counts = []
        if not counts or any(c < 1 or c > 100 for c in counts):
            raise ValueError(
                f"VIDEO_COUNTS must be comma-separated whole numbers from 1 to 100, got {v!r}"
            )
        return v

    def model_post_init(self, _context: Any) -> None:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        # Parse eagerly so a bad value stops the program at start, not at first use.
        object.__setattr__(
            self,
            "_kie_keys",
            parse_keys("kie", "KIE_API_KEYS", self.kie_api_keys.get_secret_value()),
        )
        object.__setattr__(
            self,
            "_openai_keys",
            parse_keys("openai", "OPENAI_API_KEYS", self.openai_api_keys.get_secret_value()),
        )
        object.__setattr__(
            self, "_kie_create_rate", _parse_rate("KIE_CREATE_LIMIT", self.kie_create_limit)
        )
        object.__setattr__(
            self, "_kie_query_rate", _parse_rate("KIE_QUERY_LIMIT", self.kie_query_limit)
        )
        object.__setattr__(self, "_deadlines", _parse_deadlines(self.video_deadlines))
        shortest = min([self.video_deadline_seconds, *self._deadlines.values()])  # type: ignore[attr-defined]
        if self.kie_first_poll_seconds >= shortest:
            raise ValueError(
                f"KIE_FIRST_POLL_SECONDS ({self.kie_first_poll_seconds:g}) must be below the "
                f"shortest video deadline ({shortest:g} s): no video would be polled in time"
            )

    # -- parsed views -----------------------------------------------------------------------

    @property
    def kie_keys(self) -> tuple[ApiKey, ...]:
        return self._kie_keys  # type: ignore[attr-defined,no-any-return]

    @property
    def openai_keys(self) -> tuple[ApiKey, ...]:
        return self._openai_keys  # type: ignore[attr-defined,no-any-return]

    def keys_for(self, provider: str) -> tuple[ApiKey, ...]:
        """The configured keys of ``provider`` (``kie`` or ``openai``)."""
        return {"kie": self.kie_keys, "openai": self.openai_keys}.get(provider, ())

    @property
    def kie_create_rate(self) -> RateLimit:
        return self._kie_create_rate  # type: ignore[attr-defined,no-any-return]

    @property
    def kie_query_rate(self) -> RateLimit:
        return self._kie_query_rate  # type: ignore[attr-defined,no-any-return]

    @property
    def allowed_counts(self) -> tuple[int, ...]:
        return tuple(sorted({int(x) for x in self.video_counts.split(",") if x.strip()}))

    def video_deadline_for(self, model: str | None = None) -> float:
        """Seconds a video job may take, per model (``VIDEO_DEADLINES``) or the default."""
        deadlines: dict[str, float] = self._deadlines  # type: ignore[attr-defined]
        return deadlines.get(model or self.kie_model, self.video_deadline_seconds)

    def secrets(self) -> list[str]:
        """Every configured secret value, for the redaction filter."""
        values = [k.secret.get_secret_value() for k in (*self.kie_keys, *self.openai_keys)]
        values += [
            self.telegram_bot_token.get_secret_value(),
            self.sentry_dsn.get_secret_value(),
            self.kie_webhook_hmac_key.get_secret_value(),
        ]
        for url in (self.database_url, self.redis_url):
            password = urlsplit(url).password
            if password:
                values.append(password)
        return [v for v in values if v]

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in ("database_url", "redis_url") and isinstance(value, str):
                value = _mask_url_password(value)
            yield name, value


def _parse_deadlines(raw: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        model, sep, seconds = entry.rpartition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not sep or not model.strip() or value <= 0:
            raise ConfigError(
                f"VIDEO_DEADLINES must be comma-separated model=seconds pairs, got {entry!r}"
            )
        result[model.strip()] = value
    return result


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


def _credential_overrides() -> dict[str, str]:
    """Values from files in ``$CREDENTIALS_DIRECTORY`` for variables the environment lacks."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return {}
    found: dict[str, str] = {}
    for variable in CREDENTIAL_VARIABLES:
        if os.environ.get(variable):
            continue
        for candidate in (variable, variable.lower(), variable.lower().replace("_", "-")):
            path = Path(directory) / candidate
            if path.is_file():
                found[variable.lower()] = path.read_text(encoding="utf-8").strip()
                break
    return found


def load_settings(**overrides: Any) -> Settings:
    """Load and validate settings; raise :class:`ConfigError` with one clear sentence."""
    try:
        settings = Settings(**{**_credential_overrides(), **overrides})
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # model_post_init
        raise ConfigError(str(exc)) from None
    register_secrets(settings.secrets())
    return settings


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    variable = str(err["loc"][0]).upper() if err["loc"] else "configuration"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if msg.startswith(variable):
        return msg
    if not err["loc"] and re.match(r"[A-Z][A-Z0-9_]+ ", msg):
        return msg  # a check across settings (model_post_init) names its own variable
    if "pattern" in err.get("type", ""):
        pattern = (err.get("ctx") or {}).get("pattern", "")
        choices = re.findall(r"\(([^()]*\|[^()]*)\)", str(pattern))
        if choices:
            return f"{variable} must be one of {', '.join(choices[0].split('|'))}"
    return f"{variable} is invalid: {msg[:1].lower() + msg[1:]}"
