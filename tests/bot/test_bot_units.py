"""The reference bot's own pieces, without services: its languages, its settings, and how each
refusal of the client reads to a user."""

from __future__ import annotations

import pytest

from examples.telegram_bot import texts
from examples.telegram_bot.bot import explain
from examples.telegram_bot.settings import BotConfigError, BotSettings
from worker import errors
from worker.client import (
    InsufficientCredits,
    InvalidRequest,
    JobStateConflict,
    NotYourJob,
    UnknownJob,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "language"),
    [("ru", "ru"), ("ru-RU", "ru"), ("UK", "uk"), ("en-US", "en"), ("pt-BR", "en"), (None, "en")],
)
def test_the_language_is_the_users_else_english(code: str | None, language: str) -> None:
    assert texts.language(code) == language


def test_every_language_has_every_text_and_the_same_placeholders() -> None:
    import string

    def fields(template: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f}

    english = texts.TEXTS["en"]
    for lang, catalogue in texts.TEXTS.items():
        plural_forms = {k for k in catalogue if k.endswith("_few")}
        assert set(catalogue) - plural_forms == set(english), lang
        for key, template in english.items():
            assert fields(catalogue[key]) == fields(template), (lang, key)


@pytest.mark.parametrize(
    ("code", "n", "words"),
    [
        ("en", 1, "1 credit"),
        ("en", 4, "4 credits"),
        ("ru", 1, "1 кредит"),
        ("ru", 3, "3 кредита"),
        ("ru", 5, "5 кредитов"),
        ("ru", 11, "11 кредитов"),
        ("ru", 21, "21 кредит"),
        ("ru", 22, "22 кредита"),
        ("uk", 2, "2 кредити"),
        ("uk", 14, "14 кредитів"),
    ],
)
def test_counts_read_right(code: str, n: int, words: str) -> None:
    assert texts.counted(code, "credit", n) == words


def test_the_eta_in_words() -> None:
    assert texts.eta("en", None) == ""
    assert texts.eta("en", 20) == " Expected in under a minute."
    assert texts.eta("en", 61) == " Expected in about 2 minutes."
    assert texts.eta("ru", 250) == " Будет готово примерно через 5 минут."
    assert texts.eta("uk", 90) == " Буде готово приблизно за 2 хвилини."


def test_settings_from_the_environment() -> None:
    settings = BotSettings.from_env(
        {
            "BOT_TOKEN": "123:abc-DEF_1",
            "TELEGRAM_API_URL": "http://127.0.0.1:8900/",
            "BOT_WELCOME_CREDITS": "5",
        }
    )
    assert (settings.api_url, settings.welcome_credits, settings.poll_seconds) == (
        "http://127.0.0.1:8900",
        5,
        30,
    )
    assert "abc-DEF_1" not in repr(settings)
    assert BotSettings.from_env({"BOT_TOKEN": "1:x"}).api_url is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "BOT_TOKEN"),
        ({"BOT_TOKEN": "not a token"}, "BOT_TOKEN"),
        ({"BOT_TOKEN": "1:x", "TELEGRAM_API_URL": "ftp://x"}, "TELEGRAM_API_URL"),
        ({"BOT_TOKEN": "1:x", "BOT_WELCOME_CREDITS": "lots"}, "BOT_WELCOME_CREDITS"),
        ({"BOT_TOKEN": "1:x", "BOT_WELCOME_CREDITS": "-1"}, "BOT_WELCOME_CREDITS"),
        ({"BOT_TOKEN": "1:x", "BOT_POLL_SECONDS": "90"}, "BOT_POLL_SECONDS"),
    ],
)
def test_a_wrong_setting_is_one_sentence_naming_it(env: dict[str, str], names: str) -> None:
    with pytest.raises(BotConfigError, match=names):
        BotSettings.from_env(env)


def test_each_refusal_reads_as_a_sentence() -> None:
    assert (
        explain(InsufficientCredits(1, 3, 1), "en")
        == "Not enough credits: this needs 3 credits, you have 1 credit."
    )
    assert (
        explain(InsufficientCredits(1, 5, 2), "ru")
        == "Недостаточно кредитов: нужно 5 кредитов, у вас 2 кредита."
    )
    # Another user's job and no job at all read the same: nothing to learn by forging.
    assert explain(NotYourJob(7, 1), "en") == explain(UnknownJob(7), "en")
    assert explain(UnknownJob(7), "uk") == "Це відео вам недоступне."
    assert explain(JobStateConflict("job 7 is running"), "en") == (
        "That cannot be done with this video right now."
    )
    assert explain(InvalidRequest("title", "must be at most 200 characters"), "en") == (
        "That did not work: the name is empty or too long. Please try again."
    )
    assert explain(InvalidRequest("weird", "no"), "ru") == (
        "Не получилось: запрос не принят. Попробуйте ещё раз."
    )
    busy = errors.Busy("video", 1500.0, 1200.0)
    assert explain(busy, "en") == (
        "We are very busy right now: a new video would take about 25 minutes. "
        "Please try again later."
    )
    assert explain(RuntimeError("connection refused"), "en") == (
        "Something went wrong on our side. Please try again in a minute."
    )
