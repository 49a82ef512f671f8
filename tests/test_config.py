"""Configuration: clear one-sentence errors naming the variable, and secrets never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobs.report.settings import report_settings
from jobs.video.settings import video_settings
from worker.config import key_name_for, load_settings
from worker.errors import ConfigError
from worker.kinds import get_kind
from worker.redaction import RedactingFilter, install_logging, redact


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"database_url": "mysql://localhost/x"}, "DATABASE_URL"),
        ({"database_url": "not a url"}, "DATABASE_URL"),
        ({"redis_url": "http://localhost"}, "REDIS_URL"),
        ({"redis_url": "redis://h:notaport/0"}, "REDIS_URL"),
        ({"kie_api_keys": "a=one-secret-1,,b=two"}, "KIE_API_KEYS"),
        ({"kie_api_keys": "a=sk-12345678,a=sk-87654321"}, "KIE_API_KEYS"),
        ({"kie_api_keys": "bad name=sk-12345678"}, "KIE_API_KEYS"),
        ({"openai_api_keys": "x="}, "OPENAI_API_KEYS"),
        ({"video_price_credits": -1}, "VIDEO_PRICE_CREDITS"),
        ({"video_price_credits": "lots"}, "VIDEO_PRICE_CREDITS"),
        ({"video_counts": "1,0"}, "VIDEO_COUNTS"),
        ({"kie_base_url": "ftp://api"}, "KIE_BASE_URL"),
        ({"video_resolution": "1080p"}, "VIDEO_RESOLUTION"),
        ({"kie_model": "sora-2-image-to-video"}, "KIE_MODEL"),
        ({"video_tiers_file": "/nonexistent/tiers.toml"}, "VIDEO_TIERS_FILE"),
        ({"kie_create_limit": "fast"}, "KIE_CREATE_LIMIT"),
        ({"video_deadlines": "sora=abc"}, "VIDEO_DEADLINES"),
        ({"metrics_port": 70000}, "METRICS_PORT"),
        ({"db_pool_min": 5, "db_pool_max": 2}, "DB_POOL_MIN"),
        ({"kie_first_poll_seconds": -1}, "KIE_FIRST_POLL_SECONDS"),
        ({"kie_callback_url": "bot.example.com/callbacks/video/kie"}, "KIE_CALLBACK_URL"),
        ({"kie_callback_url": "ftp://bot.example.com/cb"}, "KIE_CALLBACK_URL"),
        ({"kie_callback_url": "https://bot.example.com/cb#kie"}, "KIE_CALLBACK_URL"),
        ({"kie_safety_poll_seconds": 0}, "KIE_SAFETY_POLL_SECONDS"),
        ({"webhook_port": 0}, "WEBHOOK_PORT"),
        ({"report_max_bytes": 0}, "REPORT_MAX_BYTES"),
        ({"report_deadline_seconds": "soon"}, "REPORT_DEADLINE_SECONDS"),
        ({"kie_first_poll_seconds": 1800}, "KIE_FIRST_POLL_SECONDS"),
        (
            {"kie_first_poll_seconds": 90, "video_deadlines": "sora-2-pro=60"},
            "KIE_FIRST_POLL_SECONDS",
        ),
    ],
)
def test_bad_values_name_the_variable(overrides: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, **overrides)
    message = str(info.value)
    assert message.startswith(variable), message
    assert "\n" not in message
    for secret in ("one-secret-1", "sk-12345678", "sk-87654321"):
        assert secret not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/worker",
        "postgres://u:pw@db.internal/worker?sslmode=require",
        "postgresql:///worker?host=/var/run/postgresql",  # libpq: the Unix socket in a folder
        "postgresql://postgres@/worker",  # libpq: the default Unix socket
    ],
)
def test_database_urls_libpq_accepts_are_accepted(url: str) -> None:
    assert load_settings(_env_file=None, database_url=url).database_url == url


def test_a_refused_url_is_shown_with_its_password_masked() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, database_url="mysql://app:hunter2-secret@db/x")
    message = str(info.value)
    assert "'mysql://app:***@db/x'" in message and "hunter2-secret" not in message


def test_keys_parse_named_and_bare() -> None:
    s = load_settings(
        _env_file=None, kie_api_keys="main=sk-aaaaaaaaaa, sk-bbbbbbbbbb\nspare=xyzxyzxyz"
    )
    video = video_settings(s)
    assert [k.name for k in video.kie_keys] == ["main", key_name_for("sk-bbbbbbbbbb"), "spare"]
    assert video.kie_keys[0].secret.get_secret_value() == "sk-aaaaaaaaaa"
    assert key_name_for("sk-bbbbbbbbbb") == key_name_for("sk-bbbbbbbbbb")


def test_secrets_never_in_repr(caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings(
        _env_file=None,
        kie_api_keys="main=kie-secret-value-1",
        openai_api_keys="sk-openai-secret-2",
        telegram_bot_token="123456:telegram-secret-3",
        database_url="postgresql://u:db-password-4@127.0.0.1/x",
    )
    video = video_settings(s)
    text = repr(s) + str(s) + repr(video) + repr(video.kie_keys) + repr(video.openai_keys)
    for secret in (
        "kie-secret-value-1",
        "sk-openai-secret-2",
        "telegram-secret-3",
        "db-password-4",
    ):
        assert secret not in text
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("calling with %s and %s", "kie-secret-value-1", "Bearer abcdefgh12345")
    assert "kie-secret-value-1" not in caplog.text and "abcdefgh12345" not in caplog.text
    assert "sk-unregistered-abcdef" not in redact("key sk-unregistered-abcdef leaked")


def test_a_providers_client_library_is_kept_at_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The video kind declares OpenAI's logger (``Provider.loggers``): its request lines, which
    may carry URLs and headers, stay out of the logs whatever the log level."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    quiet = logging.getLogger("openai")
    monkeypatch.setattr(quiet, "level", logging.DEBUG)
    install_logging(logging.DEBUG)
    assert quiet.level == logging.WARNING


def test_dotenv_and_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("KIE_API_KEYS", "VIDEO_PRICE_CREDITS", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".env").write_text("VIDEO_PRICE_CREDITS=4\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "kie_api_keys").write_text("a=from-credential-file\nb=second-credential\n")
    (creds / "TELEGRAM_BOT_TOKEN").write_text("42:token-from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = load_settings()
    assert video_settings(s).video_price_credits == 4
    assert [k.name for k in video_settings(s).kie_keys] == ["a", "b"]
    assert s.telegram_bot_token.get_secret_value() == "42:token-from-file"
    monkeypatch.setenv("KIE_API_KEYS", "env=wins-over-file")
    assert [k.name for k in video_settings(load_settings()).kie_keys] == ["env"]


def test_each_kind_reads_its_own_settings_from_the_same_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("REPORT_MAX_BYTES", "REPORT_DEADLINE_SECONDS", "VIDEO_PRICE_CREDITS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".env").write_text("REPORT_MAX_BYTES=1234\nVIDEO_PRICE_CREDITS=7\n")
    monkeypatch.setenv("REPORT_DEADLINE_SECONDS", "60")
    s = load_settings(report_price_credits=3)  # an override of a kind's setting goes to the kind
    report = report_settings(s)
    assert (report.report_max_bytes, report.report_deadline_seconds) == (1234, 60.0)
    assert report.report_price_credits == 3
    assert video_settings(s).video_price_credits == 7
    assert report_settings(s) is report  # read once per Settings object
    assert get_kind("report").deadline(s, {}) == 60.0
    # The framework's settings hold none of them.
    assert not any(hasattr(s, name) for name in ("report_max_bytes", "kie_api_keys"))


def test_the_webhook_hmac_key_comes_from_a_credential_and_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KIE_WEBHOOK_HMAC_KEY", raising=False)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "kie_webhook_hmac_key").write_text("hmac-from-credential-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = load_settings()
    video = video_settings(s)
    assert video.kie_webhook_hmac_key.get_secret_value() == "hmac-from-credential-file"
    assert "hmac-from-credential-file" not in repr(s) + repr(video)
    assert "hmac-from-credential-file" not in redact("signed with hmac-from-credential-file")
    # systemd's empty fallback (SetCredential=...:\n) means "not set".
    (creds / "kie_webhook_hmac_key").write_text("\n")
    assert video_settings(load_settings()).kie_webhook_hmac_key.get_secret_value() == ""
