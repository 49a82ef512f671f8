"""Which column is which: header names matched flexibly to the four fields a report uses.

A header is normalised before matching: trimmed, case-folded, a BOM dropped, anything in
brackets dropped (``Earnings (USD)``), ``_ - . / : # ,`` turned into spaces, and currency words
and symbols removed (``Revenue, $``, ``amount_usd``). Then, for each field, a header equal to one
of its aliases wins over one that merely *ends with* a suffix alias (``Total earnings``,
``Sale date (UTC)``); among equals the earlier alias wins (``earnings`` over ``amount``), then
the earlier column. Extra columns and any column order are fine. Content type has no suffix
match on purpose: ``License type`` is not a content type.

``date`` and ``earnings`` are required; ``title`` and ``content type`` are optional (the report
then leaves out top assets or the split by content type).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.report.values import CURRENCIES

__all__ = ["ALIASES", "FIELD_LABELS", "REQUIRED", "ColumnMap", "map_columns", "normalise"]

#: Exact aliases per field, most preferred first.
ALIASES: dict[str, tuple[str, ...]] = {
    "date": (
        "date",
        "sale date",
        "sales date",
        "date sold",
        "sold on",
        "sold at",
        "sold",
        "transaction date",
        "order date",
        "download date",
        "day",
        "дата",
        "дата продажи",
    ),
    "title": (
        "title",
        "asset",
        "item",
        "asset title",
        "asset name",
        "item title",
        "item name",
        "media title",
        "file name",
        "filename",
        "name",
        "название",
        "наименование",
        "ассет",
        "файл",
    ),
    "content_type": (
        "content type",
        "media type",
        "type",
        "asset type",
        "item type",
        "file type",
        "тип",
        "тип контента",
        "тип файла",
    ),
    "earnings": (
        "earnings",
        "amount",
        "revenue",
        "net earnings",
        "your earnings",
        "royalty",
        "royalties",
        "income",
        "commission",
        "payout",
        "доход",
        "сумма",
        "заработок",
        "выручка",
        "роялти",
    ),
}
#: Aliases a header may end with (``total earnings``); none for content type.
SUFFIXES: dict[str, tuple[str, ...]] = {
    "date": ("date", "дата"),
    "title": ("title", "название"),
    "content_type": (),
    "earnings": ("earnings", "amount", "revenue", "royalty", "royalties", "доход", "сумма"),
}
REQUIRED = ("date", "earnings")
FIELD_LABELS = {
    "date": "date",
    "title": "title",
    "content_type": "content type",
    "earnings": "earnings",
}

_BRACKETS = re.compile(r"[(\[{].*?[)\]}]")
_PUNCT = re.compile(r"[_\-./:#,;]+")
_SYMBOLS = re.compile(r"[$€£¥₽]")


def normalise(name: str) -> str:
    s = name.replace("\ufeff", "").strip().casefold()
    s = _SYMBOLS.sub(" ", _PUNCT.sub(" ", _BRACKETS.sub(" ", s)))
    return " ".join(t for t in s.split() if t not in CURRENCIES)


def header_currency(name: str) -> str | None:
    """The currency a header names (``Earnings (USD)``, ``Сумма, ₽``), if any."""
    low = name.casefold()
    for symbol in _SYMBOLS.findall(low):
        return CURRENCIES[symbol]
    for token in re.findall(r"[^\W\d_]+", low):
        if token in CURRENCIES and len(token) >= 3:
            return CURRENCIES[token]
    return None


@dataclass(frozen=True)
class ColumnMap:
    """Field → column index, and field → the header as written in the file."""

    index: dict[str, int]
    names: dict[str, str]
    currency: str | None

    @property
    def usable(self) -> bool:
        return all(f in self.index for f in REQUIRED)

    def missing(self) -> list[str]:
        return [f for f in REQUIRED if f not in self.index]


def map_columns(header: Sequence[str]) -> ColumnMap:
    """Match a header row to the report's fields (see the module docstring for the rules)."""
    normalised = [normalise(h) for h in header]
    index: dict[str, int] = {}
    taken: set[int] = set()
    for field in ALIASES:
        best: tuple[int, int, int] | None = None  # (exact? 0 : 1, alias rank, column)
        for col, norm in enumerate(normalised):
            if col in taken or not norm:
                continue
            rank = _rank(field, norm)
            if rank is not None and (best is None or (*rank, col) < best):
                best = (*rank, col)
        if best is not None:
            index[field] = best[2]
            taken.add(best[2])
    names = {f: header[i].replace("\ufeff", "").strip() for f, i in index.items()}
    currency = header_currency(header[index["earnings"]]) if "earnings" in index else None
    return ColumnMap(index, names, currency)


def _rank(field: str, norm: str) -> tuple[int, int] | None:
    aliases = ALIASES[field]
    if norm in aliases:
        return (0, aliases.index(norm))
    for i, suffix in enumerate(SUFFIXES[field]):
        if norm.endswith(" " + suffix):
            return (1, i)
    return None
