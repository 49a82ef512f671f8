"""What the report kind says to its users, in English, Russian and Ukrainian.

One catalogue (``worker.texts``), overridden in ``MESSAGES_FILE`` as ``report.<key>``. A file
that cannot be read is described by the parser in English (line, column, what was wrong):
that detail is shown as it is inside the translated message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from worker.kinds import KindTexts
from worker.texts import Catalogue

if TYPE_CHECKING:
    from worker.config import Settings

CATALOGUE = Catalogue(
    "report",
    {
        "en": {
            "failure": (
                "Sorry, your sales report for “{file_name}” could not be made. {reason}{refund}"
            ),
            "refund_one": " Your {n} credit was refunded.",
            "refund_many": " Your {n} credits were refunded.",
            "reason.our_fault": "Something went wrong on our side while making your report.",
        },
        "ru": {
            "failure": (
                "К сожалению, не получилось сделать отчёт о продажах по файлу «{file_name}». "
                "{reason}{refund}"
            ),
            "refund_one": " Мы вернули вам {n} кредит.",
            "refund_few": " Мы вернули вам {n} кредита.",
            "refund_many": " Мы вернули вам {n} кредитов.",
            "reason.our_fault": "Что-то пошло не так с нашей стороны, пока мы готовили отчёт.",
        },
        "uk": {
            "failure": (
                "На жаль, не вдалося зробити звіт про продажі за файлом «{file_name}». "
                "{reason}{refund}"
            ),
            "refund_one": " Ми повернули вам {n} кредит.",
            "refund_few": " Ми повернули вам {n} кредити.",
            "refund_many": " Ми повернули вам {n} кредитів.",
            "reason.our_fault": "Щось пішло не так з нашого боку, поки ми готували звіт.",
        },
    },
)


def refund_note(settings: Settings | None, language: str | None, price: int) -> str:
    """The sentence saying the credits came back ("" when the report cost nothing)."""
    if not price:
        return ""
    return CATALOGUE.count(settings, language, "refund", price)


def failure(
    settings: Settings | None, payload: Mapping[str, Any], user_message: str, price: int
) -> str:
    """The one message a user gets when a report fails."""
    language = payload.get("language")
    return CATALOGUE.text(
        settings,
        language,
        "failure",
        file_name=str(payload.get("file_name") or "…"),
        reason=CATALOGUE.reason(settings, language, user_message),
        refund=refund_note(settings, language, price),
    )


TEXTS = KindTexts(failure=failure, catalogue=CATALOGUE)
