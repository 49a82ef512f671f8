"""The simulator's Telegram as a bot sees it: getUpdates, injected updates, callback answers,
keyboard edits and a chat's transcript (simulator/telegram_bot.py)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from simulator.config import SimConfig
from simulator.testing import RunningSimulator, start_in_thread

TOKEN = "424242:bot-api-test-token"
USER = 5001


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    running = start_in_thread(SimConfig())
    yield running
    running.stop()


@pytest.fixture
def api(sim: RunningSimulator) -> Iterator[httpx.Client]:
    sim.reset()
    sim.configure({"telegram": {"bot_token": TOKEN}})
    with httpx.Client(base_url=f"{sim.telegram_url}/bot{TOKEN}", timeout=10) as client:
        yield client


def call(api: httpx.Client, method: str, **params: Any) -> Any:
    """A Bot API call as aiogram makes it (a form, JSON-encoded objects); the ``result``."""
    form = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in params.items()}
    body = api.post(f"/{method}", data=form).json()
    assert body["ok"], body
    return body["result"]


def error(api: httpx.Client, method: str, **params: Any) -> tuple[int, str]:
    form = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in params.items()}
    response = api.post(f"/{method}", data=form)
    body = response.json()
    assert not body["ok"] and body["error_code"] == response.status_code, body
    return response.status_code, body["description"]


def test_a_long_poll_returns_as_soon_as_an_update_arrives(
    api: httpx.Client, sim: RunningSimulator
) -> None:
    started = time.monotonic()
    assert call(api, "getUpdates", timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 3, "an empty long poll waits its timeout"

    threading.Timer(0.5, lambda: sim.send_text(USER, "hello", language_code="ru")).start()
    started = time.monotonic()
    (update,) = call(api, "getUpdates", timeout=10)
    waited = time.monotonic() - started
    assert 0.4 <= waited < 2, f"the poll returned after {waited:.2f} s, not when the update came"
    message = update["message"]
    assert message["text"] == "hello"
    assert message["from"] == {
        "id": USER,
        "is_bot": False,
        "first_name": "Customer",
        "language_code": "ru",
    }
    assert message["chat"]["id"] == USER and message["chat"]["type"] == "private"


def test_offsets_confirm_and_ids_increase(api: httpx.Client, sim: RunningSimulator) -> None:
    ids = [sim.send_text(USER, f"m{i}")["update_id"] for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    first = sim.send_text(USER, "/start")
    assert first["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert [u["update_id"] for u in call(api, "getUpdates", limit=2)] == ids[:2]
    # Not confirmed yet: asked again, the same come back.
    assert [u["update_id"] for u in call(api, "getUpdates", limit=2)] == ids[:2]
    rest = call(api, "getUpdates", offset=ids[1] + 1)
    assert [u["update_id"] for u in rest] == [ids[2], first["update_id"]]
    assert call(api, "getUpdates", offset=first["update_id"] + 1) == []
    assert sim.pending_updates() == []
    # A reset forgets the updates, never the numbering.
    sim.reset()
    sim.configure({"telegram": {"bot_token": TOKEN}})
    assert sim.send_text(USER, "again")["update_id"] > first["update_id"]


def test_a_second_poll_ends_the_first_with_a_conflict(api: httpx.Client) -> None:
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(api.post("/getUpdates", data={"timeout": "5"}))
    )
    first.start()
    time.sleep(0.3)
    assert call(api, "getUpdates") == []
    first.join(5)
    assert answers and answers[0].status_code == 409
    assert answers[0].json()["description"].startswith("Conflict: terminated by other getUpdates")


def test_allowed_updates_filters_what_comes_next(api: httpx.Client, sim: RunningSimulator) -> None:
    call(api, "getUpdates", allowed_updates=["callback_query"])
    sim.send_text(USER, "ignored")
    assert call(api, "getUpdates") == []
    assert call(api, "getUpdates", allowed_updates=[]) == []  # every type again
    sim.send_text(USER, "seen")
    assert [u["message"]["text"] for u in call(api, "getUpdates")] == ["seen"]


def _keyboard(*buttons: tuple[str, str]) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": t, "callback_data": d} for t, d in buttons]]}


def test_button_presses_answers_and_edits(api: httpx.Client, sim: RunningSimulator) -> None:
    sent = call(
        api, "sendMessage", chat_id=USER, text="How many?", reply_markup=_keyboard(("3", "n:3"))
    )
    assert sent["reply_markup"] == _keyboard(("3", "n:3"))
    with pytest.raises(ValueError, match="64 bytes"):
        sim.press_button(USER, sent["message_id"], "x" * 65)
    with pytest.raises(ValueError, match="no message"):
        sim.press_button(USER, 999_999, "n:3")
    with pytest.raises(ValueError, match="no message"):
        sim.press_button(USER + 1, sent["message_id"], "n:3")  # another chat's message

    update = sim.press_button(USER, sent["message_id"], "n:3", language_code="uk")
    query = update["callback_query"]
    assert query["data"] == "n:3" and query["from"]["language_code"] == "uk"
    assert query["message"]["message_id"] == sent["message_id"]
    assert query["message"]["from"] == sent["from"]  # the bot, as getMe names it
    assert query["message"]["text"] == "How many?"
    assert query["message"]["reply_markup"] == _keyboard(("3", "n:3"))
    (polled,) = call(api, "getUpdates")
    assert polled == update

    assert call(api, "answerCallbackQuery", callback_query_id=query["id"], text="Done") is True
    status, why = error(api, "answerCallbackQuery", callback_query_id=query["id"])
    assert (status, why.startswith("Bad Request: query is too old")) == (400, True)
    status, _ = error(api, "answerCallbackQuery", callback_query_id="12345")
    assert status == 400

    edited = call(api, "editMessageReplyMarkup", chat_id=USER, message_id=sent["message_id"])
    assert "reply_markup" not in edited and edited["edit_date"] > 0
    status, why = error(api, "editMessageReplyMarkup", chat_id=USER, message_id=sent["message_id"])
    assert status == 400 and "message is not modified" in why
    status, why = error(api, "editMessageReplyMarkup", chat_id=USER, message_id=999_999)
    assert (status, why) == (400, "Bad Request: message to edit not found")

    chat = sim.chat(USER)
    (message,) = chat["sent"]
    assert message["kind"] == "text" and message["text"] == "How many?"
    assert message["reply_markup"] is None and message["edits"] == 1
    assert [u["update_id"] for u in chat["received"]] == [update["update_id"]]
    (press,) = chat["callback_queries"]
    assert press["data"] == "n:3" and press["answered"] and press["answer_text"] == "Done"
    assert sim.chat(USER + 1) == {
        "chat_id": str(USER + 1),
        "sent": [],
        "received": [],
        "callback_queries": [],
    }


def test_reply_keyboards_are_kept_with_the_message(
    api: httpx.Client, sim: RunningSimulator
) -> None:
    markup = {"keyboard": [[{"text": "1"}, {"text": "3"}]], "resize_keyboard": True}
    call(api, "sendMessage", chat_id=USER, text="Pick", reply_markup=markup)
    assert sim.chat(USER)["sent"][0]["reply_markup"] == markup


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def test_a_photo_arrives_in_sizes_largest_last_and_each_is_a_file(
    api: httpx.Client, sim: RunningSimulator
) -> None:
    data = _jpeg(1200, 900)
    update = sim.send_photo(USER, data, language_code="ru", caption="mug")
    photo = update["message"]["photo"]
    assert [(p["width"], p["height"]) for p in photo] == [
        (90, 68),
        (320, 240),
        (800, 600),
        (1200, 900),
    ]
    assert update["message"]["caption"] == "mug"
    assert len({p["file_id"] for p in photo}) == 4
    largest = call(api, "getFile", file_id=photo[-1]["file_id"])
    assert largest["file_size"] == len(data)
    download = httpx.get(f"{sim.telegram_url}/file/bot{TOKEN}/{largest['file_path']}")
    assert download.status_code == 200 and download.content == data
    small = call(api, "getFile", file_id=photo[0]["file_id"])
    with Image.open(
        io.BytesIO(httpx.get(f"{sim.telegram_url}/file/bot{TOKEN}/{small['file_path']}").content)
    ) as image:
        assert image.size == (90, 68)
    with pytest.raises(ValueError, match="bytes"):
        sim.send_photo(USER, b"")


def test_a_query_unanswered_too_long_can_no_longer_be_answered(
    api: httpx.Client, sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator import telegram_bot

    monkeypatch.setattr(telegram_bot, "CALLBACK_ANSWER_SECONDS", 0.3)  # Telegram's 15 s, shorter
    sent = call(api, "sendMessage", chat_id=USER, text="Hi", reply_markup=_keyboard(("Go", "go")))
    query = sim.press_button(USER, sent["message_id"], "go")["callback_query"]
    time.sleep(0.5)
    status, why = error(api, "answerCallbackQuery", callback_query_id=query["id"])
    assert status == 400 and why.startswith("Bad Request: query is too old")
    assert not sim.chat(USER)["callback_queries"][0]["answered"]


def test_limit_and_a_negative_offset(api: httpx.Client, sim: RunningSimulator) -> None:
    ids = [sim.send_text(USER, f"m{i}")["update_id"] for i in range(5)]
    assert [u["update_id"] for u in call(api, "getUpdates", limit=0)] == ids[:1]  # at least 1
    # A negative offset keeps the last ones and forgets every earlier update.
    assert [u["update_id"] for u in call(api, "getUpdates", offset=-2)] == ids[3:]
    assert [u["update_id"] for u in call(api, "getUpdates")] == ids[3:]
    status, _ = error(api, "getUpdates", offset="soon")
    assert status == 400
