"""The texts a user receives from the running pipeline (simulator, PostgreSQL, Redis, Dramatiq),
in the language the bot submitted: caption, buttons, "still working", failure and its reason."""

from __future__ import annotations

from pathlib import Path

from tests.pipeline.conftest import Pipeline


def _buttons(message: dict[str, object]) -> list[tuple[str, str]]:
    markup = message["reply_markup"]
    assert isinstance(markup, dict)
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def test_russian_and_ukrainian_users_get_their_texts(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 4.0}})
    pipeline.reconfigure(progress_after_seconds=0.5)
    pipeline.start_worker()
    (ru,) = pipeline.submit(11, credits=3, title="Кружка", language="ru")
    (uk,) = pipeline.submit(12, credits=3, title="Чашка", language="uk")
    (ru_bad,) = pipeline.submit(13, credits=3, title="FORBIDDEN кружка", language="ru")
    (uk_bad,) = pipeline.submit(14, credits=2, title="FORBIDDEN чашка", language="uk")
    jobs = pipeline.wait([ru, uk, ru_bad, uk_bad], timeout=90)
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded", "failed", "failed"]

    progress, video = pipeline.messages(11)
    assert progress["text"] == (
        "Всё ещё работаем над видео «Кружка». Длинные видео могут занять несколько минут."
    )
    assert video["method"] == "sendVideo"
    assert video["caption"] == "Ваше видео «Кружка» готово."
    assert _buttons(video) == [("Сделать ещё с этим товаром", f"again:{ru}")]
    # Plain text: no parse_mode is sent, so the user's title needs no escaping.
    assert all("parse_mode" not in m["params"] for m in pipeline.messages(11))

    *_, video = pipeline.messages(12)
    assert video["caption"] == "Ваше відео «Чашка» готове."
    assert _buttons(video) == [("Зробити ще з цим товаром", f"again:{uk}")]

    # The prompt model saw the photo too (OPENAI_VISION), so its refusal names both.
    (failed,) = pipeline.messages(13)
    assert failed["text"] == (
        "К сожалению, не получилось сделать видео «FORBIDDEN кружка». ИИ-сервис отклонил "
        "фото или описание товара как недопустимое. Пожалуйста, измените фото, название или "
        "описание. Мы вернули вам 1 кредит."
    )
    (failed,) = pipeline.messages(14)
    assert failed["text"].startswith("На жаль, не вдалося зробити відео «FORBIDDEN чашка». ")
    assert "Сервіс ШІ відхилив фото або опис товару" in failed["text"]
    assert failed["text"].endswith(" Ми повернули вам 1 кредит.")
    assert [j["error_class"] for j in jobs[2:]] == ["USER_ERROR", "USER_ERROR"]
    assert pipeline.ledger_ok()


def test_an_unknown_language_gets_english_and_the_menu_button(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_menu_button=True)
    pipeline.start_worker()
    (de,) = pipeline.submit(21, credits=1, title="Becher", language="de-AT")
    (none,) = pipeline.submit(22, credits=1, title="FORBIDDEN mug")
    pipeline.wait([de, none])
    (video,) = pipeline.messages(21)
    assert video["caption"] == "Your video of “Becher” is ready."
    assert _buttons(video) == [
        ("Make another with this product", f"again:{de}"),
        ("Back to menu", "menu"),
    ]
    (failed,) = pipeline.messages(22)
    assert failed["text"].startswith("Sorry, your video of “FORBIDDEN mug” could not be made.")
    assert failed["text"].endswith(" Your 1 credit was refunded.")


def test_messages_file_overrides_what_users_receive(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "messages.toml"
    path.write_text(
        '[ru]\nvideo.caption = "Готово! «{title}»"\nvideo.button_again = "Ещё разок"\n',
        encoding="utf-8",
    )
    pipeline.reconfigure(messages_file=str(path))
    pipeline.start_worker()
    (job,) = pipeline.submit(31, credits=1, title="Кружка", language="ru")
    pipeline.wait([job])
    (video,) = pipeline.messages(31)
    assert video["caption"] == "Готово! «Кружка»"
    assert _buttons(video) == [("Ещё разок", f"again:{job}")]
