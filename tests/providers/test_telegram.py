"""TelegramNotifier against the simulator: deliveries, the 50 MB rule, and every error class."""

from __future__ import annotations

import hashlib
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from jobs.video.steps import VIDEO
from simulator.testing import RunningSimulator
from worker.config import Settings
from worker.errors import ConfigError, ErrorClass, ProviderError
from worker.telegram import MAX_UPLOAD_BYTES, TelegramNotifier

from .conftest import SHORT_TIMEOUT, Canned, Stub

TOKEN = "123456789:AAH-telegram-test-token_abcdefghij"
CHAT = 4242


def notifier(url: str, *, token: str = TOKEN, timeout: float = 5.0) -> TelegramNotifier:
    return TelegramNotifier(url, token, timeout=timeout)


def raises(cls: ErrorClass, call: object, *args: object, **kwargs: object) -> ProviderError:
    assert callable(call)
    with pytest.raises(ProviderError) as info:
        call(*args, **kwargs)
    err = info.value
    assert err.error_class is cls, repr(err)
    assert err.provider == "telegram"
    shown = str(err) + repr(err) + "".join(traceback.format_exception(err))
    assert TOKEN not in shown and TOKEN.split(":")[1] not in shown
    return err


@pytest.fixture
def tg(sim: RunningSimulator) -> Iterator[TelegramNotifier]:
    instance = notifier(sim.telegram_url)
    yield instance
    instance.close()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "result.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4000)
    return path


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    """A sparse file just above the upload limit (no disk space, never uploaded)."""
    path = tmp_path / "huge.mp4"
    with path.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    return path


# --- deliveries --------------------------------------------------------------------------------


def test_get_me(tg: TelegramNotifier) -> None:
    me = tg.get_me()
    assert me["id"] == 123456789 and me["is_bot"] is True


def test_send_message(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    message_id = tg.send_message(CHAT, "Your video is ready")
    [sent] = sim.messages(CHAT)
    assert sent["message_id"] == message_id and sent["text"] == "Your video is ready"


@pytest.mark.parametrize("unit", ["a", "\U0001f600"], ids=["ascii", "emoji"])
def test_long_text_is_cut_with_an_ellipsis(
    sim: RunningSimulator, tg: TelegramNotifier, unit: str
) -> None:
    tg.send_message(CHAT, unit * 5000)
    [sent] = sim.messages(CHAT)
    assert sent["text"].endswith("\u2026") and len(sent["text"].encode("utf-16-le")) <= 2 * 4096


def test_empty_text_is_refused_before_sending(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    with pytest.raises(ValueError):
        tg.send_message(CHAT, "  \n ")
    assert sim.calls("telegram") == []


def test_send_video_uploads_the_file(
    sim: RunningSimulator, tg: TelegramNotifier, video: Path
) -> None:
    message_id = tg.send_file(CHAT, video, VIDEO, caption="Red mug " * 200, link="https://x.test/v")
    [sent] = sim.messages(CHAT)
    assert sent["message_id"] == message_id and sent["method"] == "sendVideo"
    assert sent["file_sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert sent["file_name"] == "result.mp4"
    assert len(sent["caption"]) <= 1024 and sent["caption"].endswith("\u2026")


def test_send_document_uploads_the_file(
    sim: RunningSimulator, tg: TelegramNotifier, video: Path
) -> None:
    tg.send_document(CHAT, video, caption="report")
    [sent] = sim.messages(CHAT)
    assert sent["method"] == "sendDocument" and sent["file_size"] == video.stat().st_size


def test_video_above_50_mb_is_sent_as_a_link(
    sim: RunningSimulator, tg: TelegramNotifier, huge: Path
) -> None:
    tg.send_file(CHAT, huge, VIDEO, caption="Your video", link="https://files.example.test/v.mp4")
    [sent] = sim.messages(CHAT)
    assert sent["method"] == "sendMessage"
    assert sent["text"] == "Your video\nhttps://files.example.test/v.mp4"
    assert sim.calls("telegram", "sendVideo") == []


def test_file_above_50_mb_without_a_link_is_permanent(
    sim: RunningSimulator, tg: TelegramNotifier, huge: Path
) -> None:
    err = raises(ErrorClass.USER_ERROR, tg.send_file, CHAT, huge, VIDEO, caption="c")
    assert err.permanent_for_notification and err.code == "file_too_large"
    raises(ErrorClass.USER_ERROR, tg.send_document, CHAT, huge, caption="c")
    assert sim.calls("telegram") == []


def test_upload_refused_as_too_large_is_permanent(
    sim: RunningSimulator, tg: TelegramNotifier, video: Path
) -> None:
    sim.configure({"telegram": {"max_upload_bytes": 1000}})
    err = raises(ErrorClass.USER_ERROR, tg.send_file, CHAT, video, VIDEO, caption="c")
    assert err.status == 413 and err.permanent_for_notification


# --- error classes -----------------------------------------------------------------------------


def test_blocked_user_is_permanent_for_the_notification(
    sim: RunningSimulator, tg: TelegramNotifier, video: Path
) -> None:
    sim.configure({"telegram": {"blocked_chats": [CHAT]}})
    err = raises(ErrorClass.USER_ERROR, tg.send_message, CHAT, "hi")
    assert err.status == 403 and err.permanent_for_notification
    assert "blocked" in err.message
    err = raises(ErrorClass.USER_ERROR, tg.send_file, CHAT, video, VIDEO, caption="c")
    assert err.permanent_for_notification


def test_missing_chat_is_permanent_for_the_notification(
    sim: RunningSimulator, tg: TelegramNotifier
) -> None:
    sim.configure({"telegram": {"missing_chats": [CHAT]}})
    err = raises(ErrorClass.USER_ERROR, tg.send_message, CHAT, "hi")
    assert err.status == 400 and err.permanent_for_notification
    assert "chat not found" in err.message


def test_rate_limit_carries_retry_after(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    sim.configure({"telegram": {"chat_limit": 1, "chat_window_seconds": 30}})
    tg.send_message(CHAT, "one")
    err = raises(ErrorClass.RATE_LIMIT, tg.send_message, CHAT, "two")
    assert err.status == 429 and err.retry_after is not None and err.retry_after >= 1
    assert not err.permanent_for_notification


def test_injected_rate_limit(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    sim.configure({"telegram": {"rate_429": 1.0, "retry_after_seconds": 3}})
    assert raises(ErrorClass.RATE_LIMIT, tg.get_me).retry_after == 3.0
    assert len(sim.calls("telegram")) == 1


def test_rate_limit_retry_after_header_fallback(stub: Stub) -> None:
    # Gap: the simulator always puts retry_after in parameters.
    stub.answer(
        Canned(429, {"ok": False, "error_code": 429, "description": "x"}, {"Retry-After": "5"})
    )
    assert raises(ErrorClass.RATE_LIMIT, notifier(stub.url).get_me).retry_after == 5.0


def test_wrong_token_is_auth(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    sim.configure({"telegram": {"bot_token": "987654321:ZZZ-the-right-token_abcdef"}})
    err = raises(ErrorClass.AUTH, tg.send_message, CHAT, "hi")
    assert err.status == 401
    raises(ErrorClass.AUTH, tg.get_me)


def test_not_found_is_auth(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    # The simulator answers 404 for an unknown method, as Telegram does for a malformed token.
    raises(ErrorClass.AUTH, tg._call, "noSuchMethod")


def test_server_error_is_temporary(sim: RunningSimulator, tg: TelegramNotifier) -> None:
    sim.configure({"telegram": {"rate_5xx": 1.0}})
    err = raises(ErrorClass.TEMPORARY, tg.send_message, CHAT, "hi")
    assert err.status == 500 and not err.permanent_for_notification
    assert len(sim.calls("telegram")) == 1


def test_timeout_is_temporary(sim: RunningSimulator) -> None:
    sim.configure({"telegram": {"rate_timeout": 1.0}})
    err = raises(ErrorClass.TEMPORARY, notifier(sim.telegram_url, timeout=SHORT_TIMEOUT).get_me)
    assert err.message == "getMe: timed out (ReadTimeout)" and err.outcome_unknown


def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = raises(ErrorClass.TEMPORARY, notifier(f"http://127.0.0.1:{port}").send_message, 1, "x")
    assert err.message == "sendMessage: request failed (ConnectError)"
    assert not err.outcome_unknown
    assert err.__suppress_context__


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Canned(502, "<html>Bad Gateway</html>"), ErrorClass.TEMPORARY),
        (Canned(200, "not json at all"), ErrorClass.TEMPORARY),
        (Canned(200, {"result": {"message_id": 1}}), ErrorClass.TEMPORARY),
        (Canned(200, {"ok": True, "result": {"text": "no id"}}), ErrorClass.TEMPORARY),
        (Canned(200, {"ok": True}), ErrorClass.TEMPORARY),
        (Canned(400, {"ok": False, "description": "Bad Request: x"}), ErrorClass.USER_ERROR),
        (
            Canned(409, {"ok": False, "error_code": 409, "description": "Conflict"}),
            ErrorClass.TEMPORARY,
        ),
        (Canned(418, {"ok": False, "error_code": 418, "description": "?"}), ErrorClass.INTERNAL),
    ],
    ids=[
        "html-502",
        "text-200",
        "no-ok",
        "no-message-id",
        "no-result",
        "400-no-code",
        "409",
        "418",
    ],
)
def test_shapes_the_simulator_does_not_send(
    stub: Stub, answer: Canned, expected: ErrorClass
) -> None:
    # Gap: the simulator always answers JSON in the documented shape.
    stub.answer(answer)
    raises(expected, notifier(stub.url).send_message, CHAT, "hi")
    assert len(stub.seen) == 1


def test_from_settings(sim: RunningSimulator) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_api_url=sim.telegram_url,
        telegram_bot_token=SecretStr(TOKEN),
    )
    with TelegramNotifier.from_settings(settings) as tg:
        assert tg.get_me()["id"] == 123456789
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        TelegramNotifier.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
