"""Header names matched flexibly: aliases, case, spacing, brackets, currency words, order."""

from __future__ import annotations

import pytest

from jobs.report.columns import map_columns, normalise


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            ["Date", "Title", "Content Type", "Earnings"],
            {"date": 0, "title": 1, "content_type": 2, "earnings": 3},
        ),
        (
            ["  earnings ", "TYPE", "asset", "sale date"],
            {"earnings": 0, "content_type": 1, "title": 2, "date": 3},
        ),
        (
            ["Sale_Date", "Item", "Media-Type", "Revenue"],
            {"date": 0, "title": 1, "content_type": 2, "earnings": 3},
        ),
        (["\ufeffDate", "Amount"], {"date": 0, "earnings": 1}),
        (
            ["Asset ID", "Date (UTC)", "Title", "License type", "Earnings (USD)"],
            {"date": 1, "title": 2, "earnings": 4},
        ),
        (["date", "total earnings, $"], {"date": 0, "earnings": 1}),
        (
            ["Дата", "Название", "Тип", "Доход, руб"],
            {"date": 0, "title": 1, "content_type": 2, "earnings": 3},
        ),
        # exact beats suffix; earlier alias beats later
        (["Date", "Amount", "Earnings", "Tax amount"], {"date": 0, "earnings": 2}),
        (["Download date", "Date"], {"date": 1}),
    ],
)
def test_map_columns(header: list[str], expected: dict[str, int]) -> None:
    assert map_columns(header).index == expected


def test_names_and_currency_come_from_the_header() -> None:
    columns = map_columns(["Sale Date", "Earnings (EUR)"])
    assert columns.names == {"date": "Sale Date", "earnings": "Earnings (EUR)"}
    assert columns.currency == "€"
    assert columns.usable


def test_unusable_header() -> None:
    columns = map_columns(["foo", "bar", "Title"])
    assert not columns.usable
    assert columns.missing() == ["date", "earnings"]


def test_normalise() -> None:
    assert normalise("  Earnings_USD ") == "earnings"
    assert normalise("Revenue, $") == "revenue"
    assert normalise("Sale-Date [local]") == "sale date"
