"""A whole conversation through the reference bot (examples/telegram_bot), end to end.

The simulated users talk to the bot over the simulator's Telegram; the bot long-polls it and
submits through the real client; a real worker makes the videos (photo intake from the Telegram
file store, prompt, KIE, delivery) and sends them to the same chats. Nothing is mocked: what the
test reads is what each chat shows, the ledger and the job rows.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from simulator.testing import RunningSimulator
from tests.bot.conftest import RunningBot
from tests.pipeline.conftest import BOT_TOKEN, Pipeline, wait_for

ANNA = 7001  # speaks English
BORIS = 7002  # speaks Russian
GRANTED = 10
REPLY_SECONDS = 15.0
VIDEO_SECONDS = 60.0


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1024, 768), (180, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def _buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message.get("reply_markup") or {}
    return [
        (b["text"], b.get("callback_data", ""))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


class Chat:
    """One simulated user in their private chat with the bot."""

    def __init__(self, sim: RunningSimulator, user: int, language: str) -> None:
        self.sim, self.user, self.language = sim, user, language

    def sent(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sim.chat(self.user)["sent"]
        return messages

    def next_reply(self, since: int, what: str, timeout: float = REPLY_SECONDS) -> dict[str, Any]:
        """The first text the bot sent after the first ``since`` messages (a video the worker
        sends meanwhile is not the bot's reply)."""
        message: dict[str, Any] = wait_for(
            lambda: next((m for m in self.sent()[since:] if m["kind"] == "text"), None),
            timeout,
            what,
        )
        return message

    def say(self, text: str) -> dict[str, Any]:
        since = len(self.sent())
        self.sim.send_text(self.user, text, language_code=self.language)
        return self.next_reply(since, f"the bot's answer to {text!r}")

    def send_photo(self, data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        since = len(self.sent())
        update = self.sim.send_photo(self.user, data, language_code=self.language)
        return update, self.next_reply(since, "the bot's answer to a photo")

    def press(self, message: dict[str, Any], data: str) -> dict[str, Any]:
        """Press a button with ``data`` on ``message``; the callback query's record once the
        bot has answered it."""
        update = self.sim.press_button(
            self.user, message["message_id"], data, language_code=self.language
        )
        query_id = update["callback_query"]["id"]

        def answered() -> dict[str, Any] | None:
            for query in self.sim.chat(self.user)["callback_queries"]:
                if query["id"] == query_id and query["answered"]:
                    return dict(query, update_id=update["update_id"])
            return None

        query: dict[str, Any] = wait_for(answered, REPLY_SECONDS, f"an answer to {data!r}")
        return query

    def videos(self) -> list[dict[str, Any]]:
        return [m for m in self.sent() if m["kind"] == "video"]


def _jobs_of(pipeline: Pipeline, user: int) -> list[int]:
    rows = pipeline.db.fetchall("SELECT id FROM jobs WHERE user_id = %s ORDER BY id", (user,))
    return [int(r["id"]) for r in rows]


def _again_job(message: dict[str, Any]) -> int:
    (data,) = [d for _, d in _buttons(message) if d.startswith("again:")]
    return int(data.removeprefix("again:"))


@pytest.fixture
def bot(pipeline: Pipeline) -> Any:
    # KIE's upload host is the simulator; admission waits for the test's short deadline.
    pipeline.reconfigure(kie_upload_url=pipeline.sim.url, admission_max_wait_seconds=600)
    pipeline.start_worker(threads=4)
    running = RunningBot(pipeline).start()
    yield running
    running.stop()


def test_a_whole_conversation_through_the_reference_bot(
    pipeline: Pipeline, sim: RunningSimulator, bot: RunningBot
) -> None:
    price = 1  # the standard tier's price (VIDEO_PRICE_CREDITS)
    pipeline.client.grant(ANNA, GRANTED)
    anna = Chat(sim, ANNA, "en")

    start = anna.say("/start")
    assert start["text"].startswith(f"Hi! You have {GRANTED} credits.")

    update, asked = anna.send_photo(_photo())
    largest = update["message"]["photo"][-1]
    assert asked["text"] == "Nice photo! Now send me the product's name."
    described = anna.say("Red ceramic mug")
    assert _buttons(described) == [("Skip", "skip")]
    since = len(anna.sent())
    skipped = anna.press(described, "skip")
    counts = anna.next_reply(since, "the count keyboard")
    assert counts["text"] == "How many videos of “Red ceramic mug”? One costs 1 credit."
    assert _buttons(counts) == [("1", "count:1"), ("3", "count:3"), ("5", "count:5")]
    assert anna.sent()[-2]["reply_markup"] is None  # Skip was taken off once used

    since = len(anna.sent())
    ordered = anna.press(counts, "count:3")
    assert ordered["answer_text"] == "On its way!"
    confirmation = anna.next_reply(since, "the order's confirmation")
    assert confirmation["text"].startswith(
        "Got it! 3 videos of “Red ceramic mug” are on their way."
    )
    jobs = _jobs_of(pipeline, ANNA)
    assert len(jobs) == 3
    # A second press of the spent keyboard (a quick double tap) orders nothing.
    again = anna.press(counts, "count:3")
    assert again["answer_text"] == "This button is no longer active."
    assert _jobs_of(pipeline, ANNA) == jobs

    # Three videos, each with its button, then one summary with the same button.
    wait_for(
        lambda: any("3 of 3" in (m["text"] or "") for m in anna.sent()),
        VIDEO_SECONDS,
        "three videos and the summary",
    )
    pipeline.wait(jobs)
    videos = anna.videos()
    assert sorted(_again_job(v) for v in videos) == jobs
    for video in videos:
        assert video["caption"] == "Your video of “Red ceramic mug” is ready."
        assert ("Make another with this product", f"again:{_again_job(video)}") in _buttons(video)
    summaries = [m for m in anna.sent() if m["kind"] == "text" and "3 of 3" in (m["text"] or "")]
    assert len(summaries) == 1
    (summary,) = summaries
    assert summary["message_id"] > max(v["message_id"] for v in videos)
    assert any(d.startswith("again:") for _, d in _buttons(summary))
    for job in pipeline.client.jobs(user_id=ANNA):
        assert job["status"] == "succeeded"
        assert job["payload"]["photo_file_id"] == largest["file_id"]  # the largest size

    # "Make another" on the first video: a fourth video, charged once more.
    first = min(videos, key=lambda v: v["message_id"])
    since = len(anna.sent())
    made = anna.press(first, f"again:{_again_job(first)}")
    assert made["answer_text"] == "On its way!"
    assert anna.next_reply(since, "the clone's confirmation")["text"].startswith(
        "Making another video of this product."
    )
    wait_for(lambda: len(anna.videos()) == 4, VIDEO_SECONDS, "the fourth video")
    fourth = _jobs_of(pipeline, ANNA)[-1]
    (clone,) = pipeline.wait([fourth])
    assert clone["status"] == "succeeded" and clone["cloned_from"] == _again_job(first)
    balance = pipeline.client.balance(ANNA)
    assert (balance.available, balance.held, balance.spent) == (GRANTED - 4 * price, 0, 4 * price)

    keys = pipeline.db.fetchall(
        "SELECT idempotency_key FROM requests WHERE user_id = %s ORDER BY created_at", (ANNA,)
    )
    assert [r["idempotency_key"] for r in keys] == [
        f"tg-update-{ordered['update_id']}",
        f"tg-callback-{made['id']}",
    ]
    assert skipped["answered"]
    assert all(q["answered"] for q in sim.chat(ANNA)["callback_queries"])
    assert pipeline.ledger_ok()


def test_a_russian_user_and_a_forged_button(
    pipeline: Pipeline, sim: RunningSimulator, bot: RunningBot
) -> None:
    pipeline.client.grant(ANNA, GRANTED)
    pipeline.client.grant(BORIS, 5)
    anna_job = pipeline.submit(ANNA, title="Anna's lamp")[0]
    pipeline.wait([anna_job])
    boris = Chat(sim, BORIS, "ru")

    assert boris.say("/start")["text"].startswith("Здравствуйте! У вас 5 кредитов.")
    _, asked = boris.send_photo(_photo())
    assert asked["text"] == "Отличное фото! Теперь пришлите название товара."
    assert _buttons(boris.say("Кружка")) == [("Пропустить", "skip")]
    counts = boris.say("Керамика, 300 мл")
    assert counts["text"] == "Сколько видео «Кружка» сделать? Одно стоит 1 кредит."
    since = len(boris.sent())
    assert boris.press(counts, "count:1")["answer_text"] == "Уже в работе!"
    assert boris.next_reply(since, "the confirmation")["text"].startswith(
        "Принято! Ваше видео «Кружка» уже в работе."
    )
    wait_for(lambda: boris.videos(), VIDEO_SECONDS, "Boris's video")
    (video,) = boris.videos()
    (job,) = _jobs_of(pipeline, BORIS)
    pipeline.wait([job])
    assert video["caption"] == "Ваше видео «Кружка» готово."
    assert ("Сделать ещё с этим товаром", f"again:{job}") in _buttons(video)
    assert pipeline.client.job(job)["payload"]["description"] == "Керамика, 300 мл"

    # A modified client forges "again" with Anna's job on Boris's own message.
    jobs_before = pipeline.db.fetchone("SELECT count(*) AS n FROM jobs")
    before = pipeline.client.balance(BORIS)
    since = len(boris.sent())
    refused = boris.press(video, f"again:{anna_job}")
    assert refused["answer_text"] == "Это видео вам недоступно."
    assert refused["show_alert"]
    assert pipeline.client.balance(BORIS) == before
    assert pipeline.client.balance(BORIS).available == 4
    assert pipeline.db.fetchone("SELECT count(*) AS n FROM jobs") == jobs_before
    assert boris.sent()[since:] == []
    assert all(q["answered"] for q in sim.chat(BORIS)["callback_queries"])

    # The bot never wrote its token, nor did aiogram for it.
    secret = BOT_TOKEN.split(":", 1)[1]
    assert bot.logs.lines, "the bot's log was captured"
    assert not [line for line in bot.logs.lines if secret in line]


TIERS = """
default = "standard"

[tiers.standard]
price = 1
chain = ["bytedance/seedance-2-mini"]

[tiers.premium]
price = 4
chain = ["kling-2.6/image-to-video"]
"""


def test_tiers_and_a_refusal_that_keeps_the_order(
    pipeline: Pipeline, sim: RunningSimulator, tmp_path: Path
) -> None:
    """With two tiers the bot asks which; a refusal (too few credits) is an alert on the press,
    changes nothing, and leaves the order open for another choice. No worker: the jobs wait."""
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS, encoding="utf-8")
    pipeline.reconfigure(video_tiers_file=str(tiers), admission_max_wait_seconds=600)
    pipeline.client.grant(ANNA, 5)
    running = RunningBot(pipeline).start()
    try:
        anna = Chat(sim, ANNA, "en")
        anna.send_photo(_photo())
        described = anna.say("Desk lamp")
        since = len(anna.sent())
        anna.press(described, "skip")
        counts = anna.next_reply(since, "the count keyboard")
        assert counts["text"] == "How many videos of “Desk lamp”?"
        since = len(anna.sent())
        anna.press(counts, "count:3")
        asked = anna.next_reply(since, "the tier keyboard")
        assert asked["text"] == "Which quality?"
        assert _buttons(asked) == [
            ("standard: 1 credit per video", "tier:0"),
            ("premium: 4 credits per video", "tier:1"),
        ]
        refused = anna.press(asked, "tier:1")
        assert refused["answer_text"] == (
            "Not enough credits: this needs 12 credits, you have 5 credits."
        )
        assert refused["show_alert"]
        assert _jobs_of(pipeline, ANNA) == []
        assert pipeline.client.balance(ANNA).available == 5
        assert anna.sent()[-1]["message_id"] == asked["message_id"]  # nothing else said

        since = len(anna.sent())
        assert anna.press(asked, "tier:0")["answer_text"] == "On its way!"
        assert anna.next_reply(since, "the confirmation")["text"].startswith(
            "Got it! 3 videos of “Desk lamp” are on their way."
        )
        jobs = [pipeline.client.job(j) for j in _jobs_of(pipeline, ANNA)]
        assert [(j["tier"], j["price"]) for j in jobs] == [("standard", 1)] * 3
        balance = pipeline.client.balance(ANNA)
        assert (balance.available, balance.held) == (2, 3)
        assert all(q["answered"] for q in sim.chat(ANNA)["callback_queries"])
    finally:
        running.stop()


def test_welcome_credits_once_per_user_and_the_menu(
    pipeline: Pipeline, sim: RunningSimulator
) -> None:
    """``BOT_WELCOME_CREDITS`` grants once per user, whatever the number of /start; "menu"
    shows the balance again; a stray text gets a hint. No worker needed."""
    running = RunningBot(pipeline, welcome_credits=3).start()
    try:
        anna = Chat(sim, ANNA, "uk")
        first = anna.say("/start")
        assert first["text"] == (
            "Ласкаво просимо! Ось 3 кредити, щоб спробувати.\nВітаю! У вас 3 кредити.\n"
            "Надішліть фото вашого товару, і я зроблю з нього короткі відео."
        )
        assert anna.say("/start")["text"].startswith("Вітаю! У вас 3 кредити.")
        assert pipeline.client.balance(ANNA).available == 3
        assert anna.say("привіт")["text"] == "Щоб почати, надішліть фото вашого товару."
        since = len(anna.sent())
        assert anna.press(first, "menu")["answered"]
        assert anna.next_reply(since, "the menu")["text"].startswith("Вітаю! У вас 3 кредити.")
        assert anna.press(first, "no-such-button")["answer_text"] == "Ця кнопка більше не діє."
    finally:
        running.stop()
    grants = pipeline.db.fetchone(
        "SELECT count(*) AS n FROM transfers WHERE kind = 'single' AND reason = 'welcome credits'"
    )
    assert grants == {"n": 1}
