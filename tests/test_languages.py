"""Languages: the catalogues, the fallback, the operator's MESSAGES_FILE, the language a submit
stores. (The texts a user receives from a running pipeline: tests/pipeline/test_languages_pipeline.py.)"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from jobs.video import fallback, kie, prompt
from jobs.video import texts as video_texts
from jobs.video.steps import again_data
from tests.report.report_csv import csv_text
from worker import texts
from worker.client import Client
from worker.config import Settings, load_settings
from worker.errors import ConfigError, InvalidRequest
from worker.telegram import MAX_CALLBACK_DATA_BYTES, inline_keyboard

PRODUCT = {"title": "Red ceramic mug", "image_url": "https://example.test/mug.jpg"}


def _settings(settings: Settings, **overrides: object) -> Settings:
    return load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        storage_dir=str(settings.storage_dir),
        _env_file=None,
        **overrides,
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ru", "ru"),
        ("uk", "uk"),
        ("en-US", "en-us"),
        ("pt_BR", "pt-br"),
        ("de", "de"),
        (None, None),
    ],
)
def test_language_is_validated_and_stored(client: Client, given: str, stored: str | None) -> None:
    client.grant(1, 1)
    res = client.submit_video(user_id=1, product=PRODUCT, language=given)
    assert client.job(res.job_ids[0])["payload"].get("language") == stored


def test_make_another_keeps_the_language(client: Client) -> None:
    client.grant(4, 2)
    (job,) = client.submit_video(user_id=4, product=PRODUCT, language="uk").job_ids
    (again,) = client.clone(job, user_id=4).job_ids
    assert client.job(again)["payload"]["language"] == "uk"


@pytest.mark.parametrize("bad", ["russian!", "r", "ru-" + "x" * 40, "<b>", 7, "ru\n"])
def test_a_malformed_language_is_refused_and_changes_nothing(client: Client, bad: object) -> None:
    client.grant(2, 1)
    with pytest.raises(InvalidRequest) as err:
        client.submit_video(user_id=2, product=PRODUCT, language=bad)  # type: ignore[arg-type]
    assert err.value.field == "language"
    assert client.balance(2).available == 1 and client.jobs(user_id=2) == []


def test_a_report_stores_its_language_too(client: Client, settings: Settings) -> None:
    csv = Path(settings.storage_dir) / "sales.csv"
    csv.write_text(csv_text([("2024-03-01", "Mug", "video", "10.00")]), encoding="utf-8")
    client.grant(3, 5)
    res = client.submit_report(3, 3, csv, language="uk")
    assert client.job(res.job_ids[0])["payload"]["language"] == "uk"


def test_every_catalogue_speaks_english_russian_and_ukrainian() -> None:
    for catalogue in texts.catalogues():
        assert {"en", "ru", "uk"} <= set(catalogue.languages), catalogue.name
        english = catalogue.messages["en"]
        for language in ("ru", "uk"):
            own = catalogue.messages[language]
            missing = [k for k in english if k not in own]
            assert not missing, (catalogue.name, language, missing)
            for key, template in own.items():
                # Cyrillic, and no English sentence left untranslated (a template of
                # placeholders and punctuation alone has no words to translate).
                words = re.sub(r"\{[^}]*\}", "", template)
                if not any(c.isalpha() for c in words):
                    continue
                assert any("\u0400" <= c <= "\u04ff" for c in template), (language, key)


def test_the_reasons_the_code_raises_are_in_the_catalogues() -> None:
    raised = [
        kie._USER_POLICY,
        kie._USER_INVALID,
        kie._USER_FAILED,
        kie._USER_UNAVAILABLE,
        prompt._USER_REFUSED,
        fallback._USER_NO_MODEL,
    ]
    for english in raised:
        assert video_texts.CATALOGUE.reason_key(english), english
        assert video_texts.CATALOGUE.reason(None, "ru", english) != english
    from jobs.report import steps as report_steps
    from jobs.report import texts as report_texts

    assert report_texts.CATALOGUE.reason(None, "uk", report_steps.OUR_FAULT) != (
        report_steps.OUR_FAULT
    )
    # The framework's own reasons, wherever worker/ raises them, with a user_message literal.
    root = Path(__file__).resolve().parents[1] / "worker"
    import re

    for path in root.rglob("*.py"):
        for literal in re.findall(r'user_message="([^"]+)"', path.read_text(encoding="utf-8")):
            assert texts.FRAMEWORK.reason_key(literal), (path.name, literal)


def test_the_fallback_order_and_plurals() -> None:
    assert texts.candidates("en-US") == ["en-us", "en"]
    assert texts.candidates("uk", "ru") == ["uk", "ru", "en"]
    assert texts.candidates(None) == ["en"]
    assert [texts.plural("ru", n) for n in (1, 2, 5, 11, 12, 21, 22, 25, 111)] == [
        "one",
        "few",
        "many",
        "many",
        "many",
        "one",
        "few",
        "many",
        "many",
    ]
    assert [texts.plural("en", n) for n in (1, 2, 0)] == ["one", "many", "many"]
    note = video_texts.CATALOGUE.refund_note
    assert note(None, "ru", 1) == " Мы вернули вам 1 кредит."
    assert note(None, "ru", 3) == " Мы вернули вам 3 кредита."
    assert note(None, "uk", 5) == " Ми повернули вам 5 кредитів."
    assert note(None, "en", 1) == " Your 1 credit was refunded."
    assert note(None, "fr", 2) == " Your 2 credits were refunded."
    assert note(None, "ru", 0) == ""


def test_default_language_applies_to_an_unknown_language(settings: Settings) -> None:
    ru_default = _settings(settings, default_language="ru")
    payload = {"title": "Mug", "language": "de"}
    assert video_texts.text(ru_default, payload, "caption") == "Ваше видео «Mug» готово."
    assert video_texts.text(settings, payload, "caption") == "Your video of “Mug” is ready."
    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE"):
        _settings(settings, default_language="Russian")


def test_user_text_is_plain_and_never_a_template(settings: Settings) -> None:
    # No parse_mode is sent, so markup in a title is shown as typed; braces are not expanded.
    payload = {"title": "<b>{price}</b> *mug* {0}", "language": "uk"}
    assert (
        video_texts.text(settings, payload, "caption")
        == "Ваше відео «<b>{price}</b> *mug* {0}» готове."
    )


def test_messages_file_overrides_texts(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "messages.toml"
    path.write_text(
        '[ru]\nvideo.caption = "Готово: «{title}»"\n'
        '[uk.video]\nbutton_again = "Ще одне"\n'
        '[en]\nworker.reason.deadline = "It took too long."\n'
        '[de]\nvideo.caption = "Ihr Video „{title}“ ist fertig."\n',
        encoding="utf-8",
    )
    s = _settings(settings, messages_file=str(path))
    ru = {"title": "Mug", "language": "ru"}
    assert video_texts.text(s, ru, "caption") == "Готово: «Mug»"
    assert video_texts.text(s, {"title": "Mug", "language": "uk"}, "button_again") == "Ще одне"
    assert video_texts.text(s, ru, "progress").startswith("Всё ещё работаем")  # not overridden
    assert video_texts.text(s, {"title": "Mug", "language": "de"}, "caption") == (
        "Ihr Video „Mug“ ist fertig."
    )
    # An operator's new language falls back to the default where it says nothing.
    assert video_texts.text(s, {"title": "Mug", "language": "de"}, "button_again") == (
        "Make another with this product"
    )
    failed = video_texts.failure(
        s, {"title": "Mug", "language": "en"}, "This took too long to make, so we stopped.", 1
    )
    assert failed == (
        "Sorry, your video of “Mug” could not be made. It took too long. "
        "Your 1 credit was refunded."
    )


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('[ru]\nvideo.captoin = "x"\n', "video.captoin is not a known text"),
        ('[ru]\nvideo.caption = "«{titel}»"\n', "uses {titel}, which it does not have"),
        ('[ru]\nvideo.caption = "{title.__class__}"\n', "which it does not have"),
        ('[ru]\nnope.caption = "x"\n', "nope.caption is not a known text"),
        ('["русский"]\nvideo.caption = "x"\n', "is not a language tag"),
        ('[russian_language]\nvideo.caption = "x"\n', "is not a language tag"),
        ("[ru]\nvideo.caption = 3\n", "must be a non-empty string"),
        ('[ru]\nvideo.caption = "{title"\n', "is malformed"),
        ("[ru\n", "is not valid TOML"),
    ],
)
def test_a_bad_messages_file_is_refused_at_start(
    settings: Settings, tmp_path: Path, content: str, said: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        _settings(settings, messages_file=str(path))
    message = str(err.value)
    assert said in message and "MESSAGES_FILE" in message
    assert "\n" not in message.strip()


def test_a_missing_messages_file_is_refused_at_start(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"MESSAGES_FILE .* cannot be read"):
        _settings(settings, messages_file=str(tmp_path / "absent.toml"))


def test_a_catalogue_refuses_unknown_keys_and_placeholders() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        texts.Catalogue("x", {"en": {"a": "A"}, "ru": {"b": "Б"}})
    with pytest.raises(ValueError, match="unknown"):
        texts.Catalogue("x", {"en": {"a": "A {n}"}, "ru": {"a": "Б {m}"}})
    with pytest.raises(ValueError, match="no English"):
        texts.Catalogue("x", {"ru": {"a": "Б"}})


def test_the_again_button_fits_telegrams_limit() -> None:
    biggest = again_data(2**63 - 1)
    assert biggest == f"again:{2**63 - 1}"
    assert len(biggest.encode()) <= MAX_CALLBACK_DATA_BYTES
    with pytest.raises(ValueError, match="callback_data"):
        inline_keyboard([[("Too long", "x" * 65)]])
    with pytest.raises(ValueError, match="callback_data"):
        inline_keyboard([[("Empty", "")]])
    assert inline_keyboard([[("Ещё", "again:1")]]) == {
        "inline_keyboard": [[{"text": "Ещё", "callback_data": "again:1"}]]
    }


def test_every_template_parses() -> None:
    for catalogue in texts.catalogues():
        for language, own in catalogue.messages.items():
            for key, template in own.items():
                list(string.Formatter().parse(template)), (catalogue.name, language, key)


def test_a_messages_file_broken_after_start_keeps_the_last_good_texts(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "messages.toml"
    path.write_text('[ru]\nvideo.caption = "Готово: «{title}»"\n', encoding="utf-8")
    s = _settings(settings, messages_file=str(path))
    ru = {"title": "Mug", "language": "ru"}
    assert video_texts.text(s, ru, "caption") == "Готово: «Mug»"
    path.write_text('[ru]\nvideo.caption = "Готово: «{titel}» (typo)"\n', encoding="utf-8")
    assert video_texts.text(s, ru, "caption") == "Готово: «Mug»"  # a user still gets a text
    assert "uses {titel}" in caplog.text
    with pytest.raises(ConfigError, match="titel"):  # and the next start refuses it
        _settings(settings, messages_file=str(path))
    path.write_text('[ru]\nvideo.caption = "Новое: «{title}»"\n', encoding="utf-8")
    assert video_texts.text(s, ru, "caption") == "Новое: «Mug»"  # a fixed file is read again


def test_the_report_caption_in_each_language(tmp_path: Path) -> None:
    from jobs.report.analyse import analyse_file
    from jobs.report.render import summary_line
    from jobs.report.texts import caption

    rows = [("2024-03-01", "Mug", "video", "10.00")] * 1500 + [
        ("2024-03-31", "Cup", "photo", "2.5")
    ]
    path = tmp_path / "sales.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    report = analyse_file(path, file_name="sales.csv", period="all", content_type=None)
    assert caption(None, "en", report) == summary_line(report)  # English as before
    assert caption(None, "ru", report) == (
        "1\u00a0501 продажа, $15,002.50 · все продажи, 01.03.2024 – 31.03.2024"
    )
    assert caption(None, "uk", report) == (
        "1\u00a0501 продаж, $15,002.50 · усі продажі, 01.03.2024 – 31.03.2024"
    )
    assert caption(None, "de", report) == summary_line(report)
