"""Configuration from the environment, an optional ``.env`` file and systemd credentials.

The framework's variables are fields of :class:`Settings`; each job kind declares its own in a
:class:`KindSettings` model (``jobs/<kind>/settings.py``), read from the same sources. A wrong
value stops the program with one sentence that names the variable and says what is expected
(:class:`worker.errors.ConfigError`); secret values never appear in that sentence, in
``repr()`` or in logs.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigError
from worker.redaction import register_secrets

E = TypeVar("E", bound="EnvSettings")
K = TypeVar("K", bound="KindSettings")

_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """One provider key: known everywhere by ``name``; ``secret`` is only sent to the provider.

    ``account`` is the provider account the key belongs to: the provider limits an account, not
    a key, so the key pool paces an account's keys together. Empty: the key is its own account,
    named after the key.
    """

    provider: str
    name: str
    secret: SecretStr = field(repr=False)
    account: str = ""

    def __post_init__(self) -> None:
        if not self.account:
            object.__setattr__(self, "account", self.name)

    def __repr__(self) -> str:
        return f"ApiKey(provider={self.provider!r}, name={self.name!r}, account={self.account!r})"


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
    """Parse keys separated by commas or newlines, each ``name=secret@account``, ``name=secret``,
    ``secret@account`` or a bare ``secret``; key names must be unique.

    ``@account`` says which provider account the key belongs to (keys of one account share its
    limits). The *last* ``@`` splits it off, and an account name follows the key-name rules, so
    a secret that itself contains ``@`` must be written with an explicit ``@account``. Without
    one, the key is the only key of an account named after it; naming that account on another
    key is refused as ambiguous. Errors name the variable and the entry, never the secret.
    """
    keys: list[ApiKey] = []
    explicit: dict[str, int] = {}  # account named with '@' -> the first entry naming it
    implicit: dict[str, int] = {}  # key without '@account' (its own account) -> its entry
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
        named = "=" in entry
        if named:
            name, _, secret = entry.partition("=")
            name, secret = name.strip(), secret.strip()
            if not _KEY_NAME.match(name):
                raise ConfigError(
                    f"{variable} entry {index} has an invalid key name; expected letters, digits, "
                    "'.', '_' or '-' (at most 64) before '='"
                )
        else:
            name, secret = "", entry
        account = ""
        if "@" in secret:
            secret, _, account = secret.rpartition("@")
            secret, account = secret.strip(), account.strip()
            if not _KEY_NAME.match(account):
                label = f" ({name})" if name else ""
                raise ConfigError(
                    f"{variable} entry {index}{label} has a missing or invalid account name "
                    "after its last '@'; expected letters, digits, '.', '_' or '-' (at most 64) "
                    "after it, as in name=secret@account"
                )
        if not named:
            name = key_name_for(secret)
        if not secret or any(c.isspace() for c in secret):
            raise ConfigError(
                f"{variable} entry {index} ({name}) has an empty or malformed secret after '='"
            )
        if any(k.name == name for k in keys):
            raise ConfigError(f"{variable} names the key {name!r} twice; key names must be unique")
        if account:
            explicit.setdefault(account, index)
        else:
            implicit[name] = index
        keys.append(ApiKey(provider=provider, name=name, secret=SecretStr(secret), account=account))
    for name, index in implicit.items():
        if name in explicit:
            raise ConfigError(
                f"{variable} entry {index} ({name}) has no @account, so it is an account of its "
                f"own, but entry {explicit[name]} names {name!r} as its account; add @{name} to "
                "share that account, or rename one of them"
            )
    return tuple(keys)


def parse_rate(variable: str, raw: str) -> RateLimit:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*", raw)
    if not m or int(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise ConfigError(
            f"{variable} must be a rate such as 20/10 (20 requests per 10 seconds), got {raw!r}"
        )
    return RateLimit(int(m.group(1)), float(m.group(2)))


def check_url(
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


class EnvSettings(BaseSettings):
    """Settings read from the environment, an optional ``.env`` file and systemd credentials.

    Field names are the environment variables, lower-cased. The framework's :class:`Settings`
    and each job kind's settings (:class:`KindSettings`) are such models, read the same way.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `METRICS_PORT=` in an environment file means "not set"
    )

    #: Variables whose value may instead come from a file in ``$CREDENTIALS_DIRECTORY``.
    credential_variables: ClassVar[tuple[str, ...]] = ()

    def secrets(self) -> list[str]:
        """Every configured secret value, for the redaction filter."""
        return []


class KindSettings(EnvSettings):
    """The settings a job kind declares (``JobKind.settings_model``), beside the framework's.

    Loaded once per :class:`Settings` object (:func:`kind_settings`), from the same sources and
    with the same overrides, so a kind's variables are set where every other variable is.
    """


class Settings(EnvSettings):
    """The framework's settings: database, Redis, pools, Telegram, storage, Sentry, metrics,
    the runtime and the webhook listener. A job kind's own settings live in its package."""

    credential_variables: ClassVar[tuple[str, ...]] = ("TELEGRAM_BOT_TOKEN", "SENTRY_DSN")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/worker"
    db_pool_min: int = Field(2, ge=1)
    #: Server connections one process may hold, whatever its thread count: 20 instances at 3
    #: fit a stock max_connections = 100 with 37 to spare (docs/deploy.md, connection budget).
    db_pool_max: int = Field(3, ge=1)
    #: auto (detect a pooler on each new connection), pgbouncer, or none.
    database_pooler: str = Field("auto", pattern=r"^(auto|pgbouncer|none)$")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = Field("worker", pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"
    telegram_timeout: float = Field(60.0, gt=0)
    #: The language of a user whose own is unknown or not spoken (worker.texts), and a TOML
    #: file of the operator's own texts ([lang] catalogue.key = "text"), checked at start.
    default_language: str = Field("en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{1,8}){0,3}$")
    messages_file: Path | None = None

    #: Where `worker webhooks` listens (the proxy in front of it serves the providers' callbacks).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(8088, ge=1, le=65535)

    storage_dir: Path = Path("storage")
    storage_retention_days: float = Field(14.0, ge=0)
    sentry_dsn: SecretStr = SecretStr("")
    metrics_port: int | None = Field(None, ge=1, le=65535)
    #: Where /metrics listens: loopback, unless the scraper runs on another host.
    metrics_host: str = "127.0.0.1"

    #: Result downloads (worker.storage): host names a result URL may name even though they
    #: resolve to a private address (the simulator's), comma-separated; other hosts must be
    #: public. http:// only with RESULT_ALLOW_HTTP (the simulator); a budget for the whole
    #: download, and a minimum average rate after a short grace.
    result_hosts: str = ""
    result_allow_http: bool = False
    result_download_seconds: float = Field(300.0, gt=0)
    result_min_bytes_per_second: float = Field(50_000.0, ge=0)

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
    #: The order at a kind's bottleneck (worker.fair_gate): round-robin across users (true), or
    #: strict submit order (false). Tier priority comes first either way.
    fair_order: bool = True
    #: Refuse a request (Busy) whose estimated wait for the kind's bottleneck is longer than
    #: this; unset: the job's deadline minus the kind's typical time after the bottleneck.
    admission_max_wait_seconds: float | None = Field(None, gt=0)

    #: What this object was made from (overrides and ``_env_file``), for the kinds' settings.
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)
    #: The kinds' settings, loaded once each (:func:`kind_settings`).
    _kinds: dict[type[KindSettings], KindSettings] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._given = dict(values)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        return check_url("DATABASE_URL", v, ("postgresql", "postgres"), hostless=True)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        return check_url("REDIS_URL", v, ("redis", "rediss", "unix"))

    @field_validator("result_hosts")
    @classmethod
    def _result_hosts(cls, v: str) -> str:
        for host in (h.strip() for h in v.split(",")):
            if host and not re.fullmatch(r"[A-Za-z0-9.:\[\]_-]{1,253}", host):
                raise ValueError(
                    "RESULT_HOSTS must list host names separated by commas, e.g. "
                    "cdn.example.com,127.0.0.1"
                )
        return v

    @field_validator("telegram_api_url")
    @classmethod
    def _http_url(cls, v: str, info: Any) -> str:
        return check_url(str(info.field_name).upper(), v.rstrip("/"), ("http", "https"))

    def model_post_init(self, _context: Any) -> None:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")

    def result_host_names(self) -> list[str]:
        """``RESULT_HOSTS`` as lower-case host names."""
        return [h.strip().lower().rstrip(".") for h in self.result_hosts.split(",") if h.strip()]

    def secrets(self) -> list[str]:
        """Every configured secret value (the kinds' too), for the redaction filter."""
        values = [self.telegram_bot_token.get_secret_value(), self.sentry_dsn.get_secret_value()]
        for url in (self.database_url, self.redis_url):
            password = urlsplit(url).password
            if password:
                values.append(password)
        for loaded in self._kinds.values():
            values += loaded.secrets()
        return [v for v in values if v]

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in ("database_url", "redis_url") and isinstance(value, str):
                value = _mask_url_password(value)
            yield name, value


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


def _credential_overrides(variables: tuple[str, ...]) -> dict[str, str]:
    """Values from files in ``$CREDENTIALS_DIRECTORY`` for variables the environment lacks."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return {}
    found: dict[str, str] = {}
    for variable in variables:
        if os.environ.get(variable):
            continue
        for candidate in (variable, variable.lower(), variable.lower().replace("_", "-")):
            path = Path(directory) / candidate
            if path.is_file():
                found[variable.lower()] = path.read_text(encoding="utf-8").strip()
                break
    return found


def _load(model: type[E], values: dict[str, Any]) -> E:
    """``model`` from the environment, credentials and ``values``, or one-sentence ConfigError."""
    try:
        return model(**{**_credential_overrides(model.credential_variables), **values})
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # model_post_init
        raise ConfigError(str(exc)) from None


def load_settings(**overrides: Any) -> Settings:
    """Load and validate the framework's settings and every job kind's; raise
    :class:`ConfigError` with one clear sentence. An override may name a kind's setting
    (as tests do): it goes to that kind's settings."""
    from worker.kinds import all_kinds

    settings = _load(Settings, overrides)
    # Load each kind's settings now, so a bad value stops the program at start.
    for kind in all_kinds():
        if kind.settings_model is not None:
            kind_settings(settings, kind.settings_model)
    # Read and check the operator's texts now, so a wrong MESSAGES_FILE stops the program.
    from worker.texts import overrides as read_texts

    read_texts(settings)
    register_secrets(settings.secrets())
    return settings


def kind_settings(settings: Settings, model: type[K]) -> K:
    """The settings ``model`` of a job kind, read from the sources (and overrides) ``settings``
    was made from; loaded once per ``settings`` object, its secrets registered for redaction."""
    loaded = settings._kinds.get(model)
    if loaded is None:
        given = settings._given
        values = {
            k: v for k, v in given.items() if k.startswith("_") or k.lower() in model.model_fields
        }
        loaded = _load(model, values)
        register_secrets(loaded.secrets())
        settings._kinds[model] = loaded
    assert isinstance(loaded, model)
    return loaded


def setting_models() -> list[type[EnvSettings]]:
    """The framework's settings model, then each job kind's: every variable the program reads."""
    from worker.kinds import all_kinds

    models: list[type[EnvSettings]] = [Settings]
    models += [k.settings_model for k in all_kinds() if k.settings_model is not None]
    return models


def credential_variables() -> tuple[str, ...]:
    """Every variable that may come from a file in ``$CREDENTIALS_DIRECTORY``."""
    return tuple(v for model in setting_models() for v in model.credential_variables)


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
