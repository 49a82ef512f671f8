"""The video kind's settings: its providers (KIE, OpenAI), its model, prices and deadlines.

Read from the same environment, ``.env`` file and ``$CREDENTIALS_DIRECTORY`` as the framework's
settings, under the same variable names (``KIE_API_KEYS``, ``VIDEO_PRICE_CREDITS``, ...). Code
gets them with :func:`video_settings` from the framework's :class:`~worker.config.Settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator

from jobs.video.tiers import Tiers, tiers_from_env, tiers_from_file
from worker.config import (
    ApiKey,
    KindSettings,
    RateLimit,
    Settings,
    check_url,
    kind_settings,
    parse_keys,
    parse_rate,
)
from worker.errors import ConfigError


class VideoSettings(KindSettings):
    """Field names are the environment variables, lower-cased."""

    credential_variables: ClassVar[tuple[str, ...]] = (
        "KIE_API_KEYS",
        "OPENAI_API_KEYS",
        "KIE_WEBHOOK_HMAC_KEY",
    )

    kie_api_keys: SecretStr = SecretStr("")
    kie_base_url: str = "https://api.kie.ai"
    #: The one-model alias of ``VIDEO_MODELS`` (a chain of one). Unset: the default chain.
    kie_model: str = ""
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
    #: KIE's File Upload API (``POST /api/file-stream-upload``): where a product photo goes.
    kie_upload_url: str = "https://kieai.redpandaai.co"

    openai_api_keys: SecretStr = SecretStr("")
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    openai_timeout: float = Field(30.0, gt=0)
    #: The prompt step sends the product photo to the model as an image input.
    openai_vision: bool = True

    video_price_credits: int = Field(1, ge=0)
    #: The ``standard`` tier's chain: model ids in fallback order (``jobs.video.tiers``).
    video_models: str = ""
    #: Its options in the catalog's vocabulary; unset: each model's catalog choice.
    video_duration: str = ""
    video_resolution: str = ""
    video_orientation: str = ""
    video_sound: str = ""
    #: A TOML file of several tiers, instead of the ``VIDEO_*`` chain and options above.
    video_tiers_file: str | None = None
    #: How long every worker skips a model KIE answered "paused" or "not supported" for.
    video_model_pause_seconds: float = Field(600.0, gt=0)
    video_counts: str = "1,3,5"
    video_deadline_seconds: float = Field(1800.0, gt=0)
    video_deadlines: str = ""
    progress_after_seconds: float = Field(300.0, gt=0)
    #: A delivered video's buttons: "Make another with this product", and "Back to menu"
    #: (callback_data ``menu``) too when this is on.
    video_menu_button: bool = False
    max_video_bytes: int = Field(500 * 1024 * 1024, gt=0)
    #: An ``image_url`` job's photo is downloaded, checked and uploaded to KIE by the worker
    #: (as a Telegram photo is), so a link KIE could not fetch fails before any money is spent.
    video_rehost_images: bool = False

    _kie_keys: tuple[ApiKey, ...] = PrivateAttr(default=())
    _openai_keys: tuple[ApiKey, ...] = PrivateAttr(default=())
    _kie_create_rate: RateLimit = PrivateAttr(default=RateLimit(20, 10))
    _kie_query_rate: RateLimit = PrivateAttr(default=RateLimit(10, 1))
    _deadlines: dict[str, float] = PrivateAttr(default_factory=dict)
    _tiers: Tiers | None = PrivateAttr(default=None)

    @field_validator("kie_base_url", "kie_upload_url", "openai_base_url")
    @classmethod
    def _http_url(cls, v: str, info: Any) -> str:
        return check_url(str(info.field_name).upper(), v.rstrip("/"), ("http", "https"))

    @field_validator("kie_callback_url")
    @classmethod
    def _callback_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        checked = check_url("KIE_CALLBACK_URL", v.strip(), ("http", "https"))
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
        # Parse eagerly so a bad value stops the program at start, not at first use.
        self._kie_keys = parse_keys("kie", "KIE_API_KEYS", self.kie_api_keys.get_secret_value())
        self._openai_keys = parse_keys(
            "openai", "OPENAI_API_KEYS", self.openai_api_keys.get_secret_value()
        )
        self._kie_create_rate = parse_rate("KIE_CREATE_LIMIT", self.kie_create_limit)
        self._kie_query_rate = parse_rate("KIE_QUERY_LIMIT", self.kie_query_limit)
        self._deadlines = _parse_deadlines(self.video_deadlines)
        self._tiers = self._load_tiers()
        shortest = min([self.video_deadline_seconds, *self._deadlines.values()])
        if self.kie_first_poll_seconds >= shortest:
            raise ValueError(
                f"KIE_FIRST_POLL_SECONDS ({self.kie_first_poll_seconds:g}) must be below the "
                f"shortest video deadline ({shortest:g} s): no video would be polled in time"
            )

    # -- parsed views -----------------------------------------------------------------------

    @property
    def kie_keys(self) -> tuple[ApiKey, ...]:
        return self._kie_keys

    @property
    def openai_keys(self) -> tuple[ApiKey, ...]:
        return self._openai_keys

    @property
    def kie_create_rate(self) -> RateLimit:
        return self._kie_create_rate

    @property
    def kie_query_rate(self) -> RateLimit:
        return self._kie_query_rate

    @property
    def allowed_counts(self) -> tuple[int, ...]:
        return tuple(sorted({int(x) for x in self.video_counts.split(",") if x.strip()}))

    @property
    def tiers(self) -> Tiers:
        """The tiers on sale (checked against the catalog when the settings were read)."""
        assert self._tiers is not None
        return self._tiers

    def _load_tiers(self) -> Tiers:
        if self.video_tiers_file:
            if self.video_models.strip() or self.kie_model.strip():
                raise ConfigError(
                    "VIDEO_TIERS_FILE replaces VIDEO_MODELS and KIE_MODEL: set one or the other"
                )
            return tiers_from_file(Path(self.video_tiers_file))
        return tiers_from_env(
            video_models=self.video_models,
            kie_model=self.kie_model,
            price=self.video_price_credits,
            duration=self.video_duration,
            resolution=self.video_resolution,
            orientation=self.video_orientation,
            sound=self.video_sound,
        )

    def video_deadline_for(self, model: str | None = None) -> float:
        """Seconds a video job may take on ``model`` (``VIDEO_DEADLINES``) or the default."""
        if model is None:
            return self.video_deadline_seconds
        return self._deadlines.get(model, self.video_deadline_seconds)

    def secrets(self) -> list[str]:
        values = [k.secret.get_secret_value() for k in (*self.kie_keys, *self.openai_keys)]
        values.append(self.kie_webhook_hmac_key.get_secret_value())
        return [v for v in values if v]


def video_settings(settings: Settings) -> VideoSettings:
    """The video kind's settings, loaded once per ``settings`` object."""
    return kind_settings(settings, VideoSettings)


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
