"""What the video kind says to its users, in English, Russian and Ukrainian.

One catalogue (``worker.texts``): the operator overrides any text in ``MESSAGES_FILE`` as
``[ru]`` ``video.caption = "..."``. The ``reason.*`` texts are the English ``user_message`` of
the errors this kind raises (``jobs/video/kie.py``, ``prompt.py``, ``fallback.py``), found by
their English text and shown in the user's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from worker.kinds import KindTexts
from worker.texts import Catalogue

if TYPE_CHECKING:
    from worker.config import Settings

CATALOGUE = Catalogue(
    "video",
    {
        "en": {
            "failure": "Sorry, your video of “{title}” could not be made. {reason}{refund}",
            "refund_one": " Your {n} credit was refunded.",
            "refund_many": " Your {n} credits were refunded.",
            "progress": (
                "Still working on your video of “{title}”. Longer videos can take a few minutes."
            ),
            "caption": "Your video of “{title}” is ready.",
            "button_again": "Make another with this product",
            "button_menu": "Back to menu",
            # request messages
            "summary": "{ready}{failed}{cancelled}{refund}.",
            "summary_ready_one": "{n} of {total} videos of “{title}” is ready",
            "summary_ready_many": "{n} of {total} videos of “{title}” are ready",
            "summary_failed_one": ", {n} failed",
            "summary_failed_many": ", {n} failed",
            "summary_cancelled_one": ", {n} was cancelled",
            "summary_cancelled_many": ", {n} were cancelled",
            "summary_refund_one": " and {n} credit was refunded",
            "summary_refund_many": " and {n} credits were refunded",
            "reason.policy": (
                "The video service refused this product image or description as not allowed."
            ),
            "reason.invalid": (
                "The video service could not accept this product image or description."
            ),
            "reason.failed": "The video service could not make a video from this product image.",
            "reason.unavailable": "This video service is temporarily unavailable.",
            "reason.no_model": "The video service is temporarily unavailable.",
            "reason.refused": (
                "The product description was refused by the AI service as not allowed. "
                "Please change the title or description."
            ),
            # photo intake
            "reason.photo_too_large": "The photo is too large. Please send a photo under 20 MB.",
            "reason.photo_too_small": (
                "The photo is too small. Please send a photo at least 300 pixels on each side."
            ),
            "reason.photo_type": (
                "This file is not a supported photo. Please send a JPEG, PNG or WEBP photo."
            ),
            "reason.photo_unreadable": (
                "The photo could not be read. Please send it again as a JPEG, PNG or WEBP photo."
            ),
            "reason.photo_aspect": (
                "The photo is too long and narrow. Please send a photo whose long side is at "
                "most 2.5 times its short side."
            ),
            "reason.photo_gone": (
                "The photo could not be fetched from Telegram. Please send it again."
            ),
            "reason.photo_link": (
                "The product image could not be downloaded from its link. Please check the link "
                "or send the photo itself."
            ),
            "reason.refused_photo": (
                "The product photo or description was refused by the AI service as not allowed. "
                "Please change the photo, title or description."
            ),
        },
        "ru": {
            "failure": "К сожалению, не получилось сделать видео «{title}». {reason}{refund}",
            "refund_one": " Мы вернули вам {n} кредит.",
            "refund_few": " Мы вернули вам {n} кредита.",
            "refund_many": " Мы вернули вам {n} кредитов.",
            "progress": (
                "Всё ещё работаем над видео «{title}». Длинные видео могут занять несколько минут."
            ),
            "caption": "Ваше видео «{title}» готово.",
            "button_again": "Сделать ещё с этим товаром",
            "button_menu": "В меню",
            # request messages
            "summary": "{ready}{failed}{cancelled}{refund}.",
            "summary_ready_one": "Готово {n} из {total} видео «{title}»",
            "summary_ready_few": "Готово {n} из {total} видео «{title}»",
            "summary_ready_many": "Готово {n} из {total} видео «{title}»",
            "summary_failed_one": ", {n} не получилось сделать",
            "summary_failed_few": ", {n} не получилось сделать",
            "summary_failed_many": ", {n} не получилось сделать",
            "summary_cancelled_one": ", {n} отменено",
            "summary_cancelled_few": ", {n} отменено",
            "summary_cancelled_many": ", {n} отменено",
            "summary_refund_one": ", и мы вернули {n} кредит",
            "summary_refund_few": ", и мы вернули {n} кредита",
            "summary_refund_many": ", и мы вернули {n} кредитов",
            "reason.policy": (
                "Видеосервис отклонил изображение или описание товара как недопустимое."
            ),
            "reason.invalid": "Видеосервис не смог принять изображение или описание товара.",
            "reason.failed": "Видеосервис не смог сделать видео по этому изображению товара.",
            "reason.unavailable": "Этот видеосервис временно недоступен.",
            "reason.no_model": "Видеосервис временно недоступен.",
            "reason.refused": (
                "ИИ-сервис отклонил описание товара как недопустимое. "
                "Пожалуйста, измените название или описание."
            ),
            # photo intake
            "reason.photo_too_large": (
                "Фото слишком большое. Пожалуйста, отправьте фото размером меньше 20 МБ."
            ),
            "reason.photo_too_small": (
                "Фото слишком маленькое. Пожалуйста, отправьте фото не меньше 300 пикселей "
                "по каждой стороне."
            ),
            "reason.photo_type": (
                "Этот файл не подходит. Пожалуйста, отправьте фото в формате JPEG, PNG или WEBP."
            ),
            "reason.photo_unreadable": (
                "Не удалось прочитать фото. Пожалуйста, отправьте его ещё раз в формате JPEG, "
                "PNG или WEBP."
            ),
            "reason.photo_aspect": (
                "Фото слишком вытянутое. Пожалуйста, отправьте фото, у которого длинная сторона "
                "не больше чем в 2,5 раза длиннее короткой."
            ),
            "reason.photo_gone": (
                "Не удалось получить фото из Telegram. Пожалуйста, отправьте его ещё раз."
            ),
            "reason.photo_link": (
                "Не удалось скачать изображение товара по ссылке. Пожалуйста, проверьте ссылку "
                "или отправьте само фото."
            ),
            "reason.refused_photo": (
                "ИИ-сервис отклонил фото или описание товара как недопустимое. "
                "Пожалуйста, измените фото, название или описание."
            ),
        },
        "uk": {
            "failure": "На жаль, не вдалося зробити відео «{title}». {reason}{refund}",
            "refund_one": " Ми повернули вам {n} кредит.",
            "refund_few": " Ми повернули вам {n} кредити.",
            "refund_many": " Ми повернули вам {n} кредитів.",
            "progress": (
                "Ще працюємо над відео «{title}». Довші відео можуть зайняти кілька хвилин."
            ),
            "caption": "Ваше відео «{title}» готове.",
            "button_again": "Зробити ще з цим товаром",
            "button_menu": "До меню",
            # request messages
            "summary": "{ready}{failed}{cancelled}{refund}.",
            "summary_ready_one": "Готово {n} з {total} відео «{title}»",
            "summary_ready_few": "Готово {n} з {total} відео «{title}»",
            "summary_ready_many": "Готово {n} з {total} відео «{title}»",
            "summary_failed_one": ", {n} не вдалося зробити",
            "summary_failed_few": ", {n} не вдалося зробити",
            "summary_failed_many": ", {n} не вдалося зробити",
            "summary_cancelled_one": ", {n} скасовано",
            "summary_cancelled_few": ", {n} скасовано",
            "summary_cancelled_many": ", {n} скасовано",
            "summary_refund_one": ", і ми повернули {n} кредит",
            "summary_refund_few": ", і ми повернули {n} кредити",
            "summary_refund_many": ", і ми повернули {n} кредитів",
            "reason.policy": ("Відеосервіс відхилив зображення або опис товару як неприпустиме."),
            "reason.invalid": "Відеосервіс не зміг прийняти зображення або опис товару.",
            "reason.failed": "Відеосервіс не зміг зробити відео з цього зображення товару.",
            "reason.unavailable": "Цей відеосервіс тимчасово недоступний.",
            "reason.no_model": "Відеосервіс тимчасово недоступний.",
            "reason.refused": (
                "Сервіс ШІ відхилив опис товару як неприпустимий. "
                "Будь ласка, змініть назву або опис."
            ),
            # photo intake
            "reason.photo_too_large": (
                "Фото завелике. Будь ласка, надішліть фото розміром менше 20 МБ."
            ),
            "reason.photo_too_small": (
                "Фото замале. Будь ласка, надішліть фото щонайменше 300 пікселів з кожного боку."
            ),
            "reason.photo_type": (
                "Цей файл не підходить. Будь ласка, надішліть фото у форматі JPEG, PNG або WEBP."
            ),
            "reason.photo_unreadable": (
                "Не вдалося прочитати фото. Будь ласка, надішліть його ще раз у форматі JPEG, "
                "PNG або WEBP."
            ),
            "reason.photo_aspect": (
                "Фото надто видовжене. Будь ласка, надішліть фото, у якого довга сторона "
                "не більш ніж у 2,5 раза довша за коротку."
            ),
            "reason.photo_gone": (
                "Не вдалося отримати фото з Telegram. Будь ласка, надішліть його ще раз."
            ),
            "reason.photo_link": (
                "Не вдалося завантажити зображення товару за посиланням. Будь ласка, перевірте "
                "посилання або надішліть саме фото."
            ),
            "reason.refused_photo": (
                "Сервіс ШІ відхилив фото або опис товару як неприпустимі. "
                "Будь ласка, змініть фото, назву або опис."
            ),
        },
    },
)


def _title(payload: Mapping[str, Any]) -> str:
    return str(payload.get("title") or "…")


def text(settings: Settings | None, payload: Mapping[str, Any], key: str) -> str:
    """A text about the job's product (``caption``, ``progress``, ``button_again``...) in the
    job's language. The title is the user's own text, shown as plain text (no parse mode)."""
    return CATALOGUE.text(settings, payload.get("language"), key, title=_title(payload))


def failure(
    settings: Settings | None, payload: Mapping[str, Any], user_message: str, price: int
) -> str:
    """The one message a user gets when a video job fails."""
    language = payload.get("language")
    return CATALOGUE.failure(settings, language, user_message, price, title=_title(payload))


TEXTS = KindTexts(failure=failure, catalogue=CATALOGUE)
