"""Reading single cells: amounts (decimal marks, grouping, currencies) and dates (formats, order)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.report.values import ValueProblem, read_amount, read_date

D = Decimal


@pytest.mark.parametrize(
    ("raw", "value", "mark"),
    [
        ("12.50", D("12.50"), "."),
        ("12,50", D("12.50"), ","),
        ("0,345", D("0.345"), ","),
        ("0.345", D("0.345"), "."),
        (",5", D("0.5"), ","),
        ("7", D(7), None),
        ("1,234.50", D("1234.50"), "."),
        ("1.234,50", D("1234.50"), ","),
        ("1 234,50", D("1234.50"), ","),
        ("1\u00a0234,50", D("1234.50"), ","),
        ("1\u202f234\u202f567,5", D("1234567.5"), ","),
        ("1'234.50", D("1234.50"), "."),
        ("1,234,567", D(1234567), "."),
        ("1.234.567", D(1234567), ","),
        ("1234,567", D("1234.567"), ","),
        ("$12.50", D("12.50"), "."),
        ("12,50 €", D("12.50"), ","),
        ("USD 3.10", D("3.10"), "."),
        ("-1.20", D("-1.20"), "."),
        ("\u22121,20", D("-1.20"), ","),
        ("(1.20)", D("-1.20"), "."),
        ("-$0.25", D("-0.25"), "."),
        ("  9.99  ", D("9.99"), "."),
        ("150 руб.", D(150), None),
    ],
)
def test_amounts(raw: str, value: Decimal, mark: str | None) -> None:
    amount = read_amount(raw)
    assert not amount.ambiguous
    assert amount.value(".") == amount.value(",") == value
    assert amount.mark == mark


@pytest.mark.parametrize(
    ("raw", "point", "comma"),
    [
        ("1,234", D(1234), D("1.234")),
        ("12.345", D("12.345"), D(12345)),
        ("999,000", D(999000), D("999.000")),
    ],
)
def test_ambiguous_amounts_keep_both_readings(raw: str, point: Decimal, comma: Decimal) -> None:
    amount = read_amount(raw)
    assert amount.ambiguous and amount.mark is None
    assert (amount.value("."), amount.value(",")) == (point, comma)


@pytest.mark.parametrize(
    "raw",
    ["abc", "", "12.", "1,2,3", "12,34.56.7", "1.234,567,8", "1e3", "12 34", "--1", "N/A", "$"],
)
def test_not_numbers(raw: str) -> None:
    with pytest.raises(ValueProblem, match="is not a number"):
        read_amount(raw)


def test_currency_is_remembered() -> None:
    assert read_amount("$1.00").currency == "$"
    assert read_amount("1,00 €").currency == "€"
    assert read_amount("1,00 RUB").currency == "₽"
    assert read_amount("1.00").currency is None


@given(
    cents=st.integers(min_value=-(10**11), max_value=10**11),
    style=st.sampled_from(["plain", "us", "eu", "space", "plain-comma"]),
)
def test_formatted_amounts_read_back(cents: int, style: str) -> None:
    value = Decimal(cents) / 100
    us = f"{value:,.2f}"
    text = {
        "plain": f"{value:.2f}",
        "us": us,
        "eu": us.replace(",", "_").replace(".", ",").replace("_", "."),
        "space": us.replace(",", " ").replace(".", ","),
        "plain-comma": f"{value:.2f}".replace(".", ","),
    }[style]
    # two decimals always prove the decimal mark, whatever the file's convention
    amount = read_amount(text)
    assert amount.value(".") == amount.value(",") == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-15", date(2024, 3, 15)),
        ("2024-3-5", date(2024, 3, 5)),
        ("2024-03-15T23:59:59Z", date(2024, 3, 15)),
        ("2024-03-15 10:00:00+03:00", date(2024, 3, 15)),
        ("2024/03/15", date(2024, 3, 15)),
        ("15.03.2024", date(2024, 3, 15)),
        ("05.03.2024 12:00", date(2024, 3, 5)),
        ("03/15/2024", date(2024, 3, 15)),
        ("15 Mar 2024", date(2024, 3, 15)),
        ("15-March-2024", date(2024, 3, 15)),
        ("Mar 15, 2024", date(2024, 3, 15)),
        ("Sept 1, 2023", date(2023, 9, 1)),
    ],
)
def test_dates(raw: str, expected: date) -> None:
    reading = read_date(raw)
    assert reading.value(True) == reading.value(False) == expected


def test_slashed_dates_order() -> None:
    ambiguous = read_date("03/04/2024")
    assert ambiguous.ambiguous and ambiguous.order is None
    assert ambiguous.value(True) == date(2024, 3, 4)
    assert ambiguous.value(False) == date(2024, 4, 3)
    assert read_date("25/03/2024").order == "day"
    assert read_date("25/03/2024").value(True) == date(2024, 3, 25)  # only one reading exists
    assert read_date("03/25/2024").order == "month"
    assert not read_date("04/04/2024").ambiguous  # same day either way


@pytest.mark.parametrize(
    "raw",
    ["2024-13-01", "31.02.2024", "13/13/2024", "yesterday", "15/03/24", "2024", "Foo 1, 2024"],
)
def test_not_dates(raw: str) -> None:
    with pytest.raises(ValueProblem, match="is not a date"):
        read_date(raw)
