"""What the report kind says to its users, in English, Russian and Ukrainian.

One catalogue (``worker.texts``), overridden in ``MESSAGES_FILE`` as ``report.<key>``. A file
that cannot be read is described by the parser in English (line, column, what was wrong):
that detail is shown as it is inside the translated message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from jobs.report.render import day_text, money
from worker.kinds import KindTexts
from worker.texts import Catalogue

if TYPE_CHECKING:
    from jobs.report.analyse import Report
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
            "sales_one": "{n} sale",
            "sales_many": "{n} sales",
            "caption": "{sales}, {earnings} · {period}",
            "period_days": "last {days} days to {end}",
            "period_range": "all sales, {first} – {last}",
            "period_day": "all sales, {last}",
            "period_all": "all sales",
            "only": " · {content_type} only",
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
            "sales_one": "{n} продажа",
            "sales_few": "{n} продажи",
            "sales_many": "{n} продаж",
            "caption": "{sales}, {earnings} · {period}",
            "period_days": "последние {days} дн. по {end}",
            "period_range": "все продажи, {first} – {last}",
            "period_day": "все продажи, {last}",
            "period_all": "все продажи",
            "only": " · только {content_type}",
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
            "sales_one": "{n} продаж",
            "sales_few": "{n} продажі",
            "sales_many": "{n} продажів",
            "caption": "{sales}, {earnings} · {period}",
            "period_days": "останні {days} дн. по {end}",
            "period_range": "усі продажі, {first} – {last}",
            "period_day": "усі продажі, {last}",
            "period_all": "усі продажі",
            "only": " · лише {content_type}",
        },
    },
)


def caption(settings: Settings | None, language: str | None, report: Report) -> str:
    """The report's caption in the user's language: ``1,500 sales, $9,123.45 · last 30 days
    to 31 Mar 2024`` (``1 500 продаж, $9,123.45 · последние 30 дн. по 31.03.2024``)."""
    english = CATALOGUE.language_for(settings, language).split("-")[0] == "en"

    def day(d: date) -> str:
        return day_text(d) if english else d.strftime("%d.%m.%Y")

    def t(key: str, **values: Any) -> str:
        return CATALOGUE.text(settings, language, key, **values)

    if report.period != "all" and report.window_end is not None:
        period = t("period_days", days=report.period.rstrip("d"), end=day(report.window_end))
    elif report.first_sale and report.last_sale and report.first_sale != report.last_sale:
        period = t("period_range", first=day(report.first_sale), last=day(report.last_sale))
    elif report.last_sale:
        period = t("period_day", last=day(report.last_sale))
    else:
        period = t("period_all")
    count = f"{report.sales:,}" if english else f"{report.sales:,}".replace(",", "\u00a0")
    sales = CATALOGUE.count(settings, language, "sales", report.sales).replace(
        str(report.sales), count, 1
    )
    text = t(
        "caption", sales=sales, earnings=money(report.earnings, report.currency), period=period
    )
    if report.content_type:
        text += t("only", content_type=report.content_type)
    return text


def failure(
    settings: Settings | None, payload: Mapping[str, Any], user_message: str, price: int
) -> str:
    """The one message a user gets when a report fails."""
    file_name = str(payload.get("file_name") or "…")
    return CATALOGUE.failure(
        settings, payload.get("language"), user_message, price, file_name=file_name
    )


TEXTS = KindTexts(failure=failure, catalogue=CATALOGUE)
