"""Aggregation: totals, by content type, by month (gaps filled), top assets, best days, periods."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jobs.report.analyse import analyse_file
from jobs.report.parse import ReportError
from tests.report.report_csv import MakeCsv

D = Decimal
ROWS = [
    ("2024-01-15", "Alpine lake", "photo", "10.00"),
    ("2024-01-20", "Beach drone", "video", "5.00"),
    ("2024-03-01", "Alpine lake", "Photos", "2.50"),
    ("2024-03-01", "City icons", "vector", "1.00"),
    ("2024-03-05", "Beach drone", "video", "-1.00"),  # a refund
    ("2024-03-10", "Alpine lake", "photo", "3.00"),
]


def months(report) -> list[tuple[date, int, Decimal]]:  # type: ignore[no-untyped-def]
    return [(m, b.sales, b.earnings) for m, b in report.by_month]


def test_everything(make_csv: MakeCsv) -> None:
    report = analyse_file(make_csv(ROWS), file_name="sales.csv", period="all")
    assert (report.sales, report.earnings, report.rows_read) == (6, D("20.50"), 6)
    assert (report.first_sale, report.last_sale) == (date(2024, 1, 15), date(2024, 3, 10))
    assert report.window_start is None and report.currency == "$"
    assert [(t.label, t.sales, t.earnings) for t in report.by_type] == [
        ("photo", 3, D("15.50")),
        ("video", 2, D("4.00")),
        ("vector", 1, D("1.00")),
    ]
    assert months(report) == [
        (date(2024, 1, 1), 2, D("15.00")),
        (date(2024, 2, 1), 0, D(0)),
        (date(2024, 3, 1), 4, D("5.50")),
    ]
    assert [(a.label, a.sales, a.earnings, a.note) for a in report.top_assets] == [
        ("Alpine lake", 3, D("15.50"), "photo"),
        ("Beach drone", 2, D("4.00"), "video"),
        ("City icons", 1, D("1.00"), "vector"),
    ]
    assert [(d, b.earnings) for d, b in report.best_days] == [
        (date(2024, 1, 15), D("10.00")),
        (date(2024, 1, 20), D("5.00")),
        (date(2024, 3, 1), D("3.50")),
        (date(2024, 3, 10), D("3.00")),
        (date(2024, 3, 5), D("-1.00")),
    ]
    assert report.active_days == 5


@pytest.mark.parametrize(
    ("period", "start", "sales", "earnings"),
    [
        ("7d", date(2024, 3, 4), 2, D("2.00")),
        ("30d", date(2024, 2, 10), 4, D("5.50")),
        ("90d", date(2023, 12, 12), 6, D("20.50")),
    ],
)
def test_periods_count_back_from_the_newest_date(
    make_csv: MakeCsv, period: str, start: date, sales: int, earnings: Decimal
) -> None:
    report = analyse_file(make_csv(ROWS), file_name="sales.csv", period=period)
    assert (report.window_start, report.window_end) == (start, date(2024, 3, 10))
    assert (report.sales, report.earnings) == (sales, earnings)


def test_content_type_filter(make_csv: MakeCsv) -> None:
    path = make_csv(ROWS)
    report = analyse_file(path, file_name="s.csv", period="all", content_type="PHOTOS")
    assert (report.sales, report.earnings) == (3, D("15.50"))
    assert [a.label for a in report.top_assets] == ["Alpine lake"]
    # the window still ends at the file's newest date, so a type may have no sales in it
    report = analyse_file(path, file_name="s.csv", period="7d", content_type="vector")
    assert (report.sales, report.window_end, report.by_month) == (0, date(2024, 3, 10), [])


def test_unknown_content_type_is_a_user_error(make_csv: MakeCsv) -> None:
    with pytest.raises(
        ReportError, match=r"no sales of content type 'audio' \(photo, vector, video\)"
    ):
        analyse_file(make_csv(ROWS), file_name="s.csv", period="all", content_type="audio")


def test_filter_without_a_content_type_column(make_csv: MakeCsv) -> None:
    path = make_csv([r[:2] + r[3:] for r in ROWS], header=("Date", "Title", "Earnings"))
    report = analyse_file(path, file_name="s.csv", period="all")
    assert not report.has_types and report.top_assets[0].note == ""
    with pytest.raises(ReportError, match="no content type column"):
        analyse_file(path, file_name="s.csv", period="all", content_type="photo")


def test_without_titles(make_csv: MakeCsv) -> None:
    path = make_csv([(r[0], r[3]) for r in ROWS], header=("Date", "Amount"))
    report = analyse_file(path, file_name="s.csv", period="all")
    assert report.top_assets == [] and report.by_type == []
    assert report.earnings == D("20.50")


def test_top_ten_assets_and_five_best_days(make_csv: MakeCsv) -> None:
    rows = [(f"2024-02-{d:02d}", f"Asset {d}", "photo", f"{d}.00") for d in range(1, 26)]
    report = analyse_file(make_csv(rows), file_name="s.csv", period="all")
    assert [a.label for a in report.top_assets] == [f"Asset {d}" for d in range(25, 15, -1)]
    assert [d.day for d, _ in report.best_days] == [25, 24, 23, 22, 21]


def test_currency_from_values_or_header(make_csv: MakeCsv) -> None:
    euro = make_csv([("2024-01-01", "a", "photo", "1,00 €")], delimiter=";")
    assert analyse_file(euro, file_name="s.csv").currency == "€"
    rub = make_csv(
        [("2024-01-01", "a", "photo", "1")], header=("Date", "Title", "Type", "Доход (RUB)")
    )
    assert analyse_file(rub, file_name="s.csv").currency == "₽"
