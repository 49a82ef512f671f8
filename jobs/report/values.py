"""Reading one cell: amounts of money and dates, as people and spreadsheets write them.

Both readers are pure and cached (exports repeat the same dates and prices on thousands of rows),
and both keep the *ambiguous* readings apart instead of guessing: the file as a whole decides
(see :mod:`jobs.report.parse`), so a file is never read half one way and half the other.

Amounts
    ``12.50``, ``12,50``, ``1,234.50``, ``1.234,50``, ``1 234,50`` (spaces, no-break spaces or
    apostrophes between digits group thousands), ``$12.50``, ``12,50 €``, ``USD 3``, ``-1.20``,
    ``(1.20)`` (negative). With both ``.`` and ``,`` the last one is the decimal mark; several of
    the same mark are thousands separators (``1,234,567``); a single mark is the decimal mark
    unless it is followed by exactly three digits after a one-to-three-digit whole part that does
    not start with 0 (``1,234``, ``12.345``): that alone is ambiguous, and is read by the file's
    decimal mark.
Dates
    ``2024-03-15`` (ISO, also with a time, or ``2024/03/15``), ``15.03.2024`` (always day first),
    ``03/15/2024`` (slashes, or dashes with the year last: month first unless the file shows it
    is day first), ``15 Mar 2024``, ``Mar 15, 2024``. Whatever follows the date (a time, a
    time zone) is ignored: a sale counts on the calendar day written in the file.
Limits
    An amount is below :data:`MAX_AMOUNT` in size with at most :data:`MAX_DECIMALS` decimals, and
    a date's year is :data:`MIN_YEAR` to :data:`MAX_YEAR`: anything else is a cell error, so a
    report's sums stay exact within ``Decimal``'s 28 digits, and its months and days stay few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

__all__ = ["Amount", "DateReading", "ValueProblem", "read_amount", "read_date"]

CACHE_SIZE = 8192
#: An amount's size must be below this (a trillion): sums stay exact, rendering cannot overflow.
MAX_AMOUNT = Decimal(10) ** 12
#: The most decimals an amount may have.
MAX_DECIMALS = 10
#: The years a sale date may have (a stock site's history; nothing before, nothing far ahead).
MIN_YEAR = 1970
MAX_YEAR = 2100


class ValueProblem(ValueError):
    """A cell cannot be read; the message is the reason, e.g. ``'abc' is not a number``."""


# --- amounts ----------------------------------------------------------------------------------

#: Currency marks that may stand before or after an amount, and the symbol the report shows.
CURRENCIES = {
    "$": "$",
    "usd": "$",
    "us$": "$",
    "€": "€",
    "eur": "€",
    "£": "£",
    "gbp": "£",
    "¥": "¥",
    "jpy": "¥",
    "₽": "₽",
    "rub": "₽",
    "руб": "₽",
    "р": "₽",
}
_CURRENCY = re.compile(r"us\$|[$€£¥₽]|\b(?:usd|eur|gbp|jpy|rub)\b|руб\.?|(?<![^\s\d])р\.", re.I)
_GROUP_SPACE = re.compile(r"(?<=\d)[\s'’](?=\d{3}(?!\d))")
_NUMBER = re.compile(r"\d[\d.,]*|[.,]\d+")
_GROUPED = {
    ",": re.compile(r"\d{1,3}(?:,\d{3})+"),
    ".": re.compile(r"\d{1,3}(?:\.\d{3})+"),
}


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount as read from one cell.

    ``point`` is its value when ``.`` is the file's decimal mark, ``comma`` when ``,`` is; they
    differ only for an ambiguous cell (``1,234``). ``mark`` is the decimal mark this cell proves,
    if it proves one (``12,50`` proves ``,``); ``currency`` the symbol it carried, if any.
    """

    point: Decimal
    comma: Decimal
    mark: str | None
    currency: str | None

    @property
    def ambiguous(self) -> bool:
        return self.point != self.comma

    def value(self, decimal_mark: str) -> Decimal:
        return self.comma if decimal_mark == "," else self.point


@lru_cache(maxsize=CACHE_SIZE)
def read_amount(raw: str) -> Amount:
    """Read one money cell, or raise :class:`ValueProblem`."""
    s = raw.strip()
    negative = False
    if len(s) >= 2 and s[0] == "(" and s[-1] == ")":
        negative, s = True, s[1:-1]
    currency = None
    found = _CURRENCY.search(s)
    if found:
        currency = CURRENCIES[found.group(0).lower().rstrip(".")]
        s = _CURRENCY.sub("", s)
    s = s.strip().replace("\u2212", "-")
    if s.startswith(("-", "+")):
        negative ^= s[0] == "-"
        s = s[1:].lstrip()
    s = _GROUP_SPACE.sub("", s)
    if not _NUMBER.fullmatch(s):
        raise ValueProblem(f"{_quote(raw)} is not a number")
    try:
        point, comma, mark = _readings(s)
    except (ValueError, InvalidOperation):
        raise ValueProblem(f"{_quote(raw)} is not a number") from None
    for v in (point, comma):
        if abs(v) >= MAX_AMOUNT:
            raise ValueProblem(f"{_quote(raw)} is too large (at most {MAX_AMOUNT:,} in size)")
        exponent = v.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
            raise ValueProblem(f"{_quote(raw)} has more than {MAX_DECIMALS} decimals")
    if negative:
        point, comma = -point, -comma
    return Amount(point, comma, mark, currency)


def _readings(s: str) -> tuple[Decimal, Decimal, str | None]:
    """(value with '.' as decimal mark, value with ',' as decimal mark, mark proven) of digits
    and separators only; raises ValueError for a malformed grouping."""
    dots, commas = s.count("."), s.count(",")
    if not dots and not commas:
        v = Decimal(s)
        return v, v, None
    if dots and commas:
        mark = "." if s.rfind(".") > s.rfind(",") else ","
        group = "," if mark == "." else "."
        whole, _, frac = s.rpartition(mark)
        if not frac or mark in whole or not _GROUPED[group].fullmatch(whole):
            raise ValueError(s)
        v = Decimal(whole.replace(group, "") + "." + frac)
        return v, v, mark
    sep = "." if dots else ","
    other = "," if sep == "." else "."
    if dots + commas > 1:  # 1,234,567: thousands separators, so the decimal mark is the other
        if not _GROUPED[sep].fullmatch(s):
            raise ValueError(s)
        v = Decimal(s.replace(sep, ""))
        return v, v, other
    whole, _, frac = s.partition(sep)
    if not frac:
        raise ValueError(s)
    as_decimal = Decimal((whole or "0") + "." + frac)
    if len(frac) == 3 and 1 <= len(whole) <= 3 and whole[0] != "0":
        as_grouped = Decimal(whole + frac)
        if sep == ".":
            return as_decimal, as_grouped, None
        return as_grouped, as_decimal, None
    return as_decimal, as_decimal, sep


# --- dates ------------------------------------------------------------------------------------

_REST = r"(?:[T\s,].*)?"
_YEAR_FIRST = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _REST, re.S)
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})" + _REST, re.S)
_SLASHED = re.compile(r"(\d{1,2})([/-])(\d{1,2})\2(\d{4})" + _REST, re.S)
_NAMED_DAY_FIRST = re.compile(r"(\d{1,2})[\s-]+([^\W\d_]{3,9})\.?,?[\s-]+(\d{4})" + _REST, re.S)
_NAMED_MONTH_FIRST = re.compile(r"([^\W\d_]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})" + _REST, re.S)
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
DATE_FORMATS = "YYYY-MM-DD, DD.MM.YYYY or MM/DD/YYYY"


@dataclass(frozen=True, slots=True)
class DateReading:
    """A date cell's readings: ``month_first`` and ``day_first`` differ only for a slashed date
    whose first two numbers are both 12 or less; one of them is None when only the other order
    gives a real date (``25/03/2024`` can only be day first)."""

    month_first: date | None
    day_first: date | None

    @property
    def ambiguous(self) -> bool:
        return (
            self.month_first is not None
            and self.day_first is not None
            and self.month_first != self.day_first
        )

    @property
    def order(self) -> str | None:
        """``"month"`` or ``"day"`` when this cell proves the file's order, else None."""
        if self.day_first is None:
            return "month"
        if self.month_first is None:
            return "day"
        return None

    def value(self, month_first: bool) -> date:
        first, second = (
            (self.month_first, self.day_first)
            if month_first
            else (self.day_first, self.month_first)
        )
        result = first or second
        assert result is not None
        return result


@lru_cache(maxsize=CACHE_SIZE)
def read_date(raw: str) -> DateReading:
    """Read one date cell, or raise :class:`ValueProblem`."""
    reading = _read_date(raw)
    for d in (reading.month_first, reading.day_first):
        if d is not None and not MIN_YEAR <= d.year <= MAX_YEAR:
            raise ValueProblem(
                f"{_quote(raw)} is not a plausible sale date (years {MIN_YEAR} to {MAX_YEAR})"
            )
    return reading


def _read_date(raw: str) -> DateReading:
    s = raw.strip()
    m = _YEAR_FIRST.fullmatch(s)
    if m:
        d = _date(m[1], m[3], m[4])
        if d:
            return DateReading(d, d)
    elif m := _DOTTED.fullmatch(s):
        d = _date(m[3], m[2], m[1])
        if d:
            return DateReading(d, d)
    elif m := _SLASHED.fullmatch(s):
        month_first = _date(m[4], m[1], m[3])
        day_first = _date(m[4], m[3], m[1])
        if month_first or day_first:
            return DateReading(month_first, day_first)
    elif m := _NAMED_DAY_FIRST.fullmatch(s):
        d = _date(m[3], _month(m[2]), m[1])
        if d:
            return DateReading(d, d)
    elif m := _NAMED_MONTH_FIRST.fullmatch(s):
        d = _date(m[3], _month(m[1]), m[2])
        if d:
            return DateReading(d, d)
    raise ValueProblem(f"{_quote(raw)} is not a date (use {DATE_FORMATS})")


def _month(name: str) -> str:
    low = name.lower()
    for number, full in enumerate(_MONTHS, 1):
        if len(low) >= 3 and full.startswith(low):
            return str(number)
    return "0"


def _date(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _quote(raw: str, limit: int = 40) -> str:
    text = raw.strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "'" + text.replace("'", "’") + "'"
