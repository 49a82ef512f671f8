"""The numbers of a report: totals, by content type, by month, top assets and best days.

Aggregation is incremental: each sale is added to a few running buckets and dropped, so memory
grows with the number of distinct assets, days, months and content types, never with the number
of rows. Every sale is one row; amounts are summed exactly (``Decimal``); a negative amount (a
refund or chargeback) counts against its buckets.

The period is counted back from the newest sale date in the file, not from today: an export
downloaded last month still gives a meaningful "last 30 days", and the same file always gives
the same report. ``7d`` is the newest day and the six before it. The content-type filter is
applied inside that window (the window itself always ends at the file's newest date, whatever
the filter), compared case-insensitively with a trailing plural ``s`` ignored.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from jobs.report.parse import UNTITLED, ReportError, Sale, SalesFile, type_key

__all__ = ["PERIODS", "Aggregate", "Bucket", "Line", "Report", "aggregate", "analyse_file"]

#: Period name → days counted back from the newest date (None: everything).
PERIODS: dict[str, int | None] = {"7d": 7, "30d": 30, "90d": 90, "all": None}
TOP_ASSETS = 10
BEST_DAYS = 5
#: The month table and chart show at most this many months, the newest; the totals still count
#: every sale. (Dates are bounded to years 1970-2100, so days and months are bounded anyway.)
MAX_MONTHS_SHOWN = 240
#: Distinct titles and content types a report keeps a bucket for: what its memory grows with.
#: A file with more is refused at the line of the first one over (split it, or filter by type).
MAX_TITLES = 200_000
MAX_TYPES = 1_000
DEFAULT_CURRENCY = "$"


class Bucket:
    """Sales and earnings of one group."""

    __slots__ = ("earnings", "sales")

    def __init__(self) -> None:
        self.sales = 0
        self.earnings = Decimal(0)

    def add(self, amount: Decimal) -> None:
        self.sales += 1
        self.earnings += amount


@dataclass(frozen=True)
class Line:
    """One line of a table in the report."""

    label: str
    sales: int
    earnings: Decimal
    note: str = ""  # an asset's content type


@dataclass(frozen=True)
class Report:
    file_name: str
    period: str
    content_type: str | None
    currency: str
    window_start: date | None  # the period asked for (None for "all")
    window_end: date | None
    first_sale: date | None  # the sales actually in the report
    last_sale: date | None
    sales: int
    earnings: Decimal
    by_type: list[Line]  # by earnings, largest first; empty without a content-type column
    by_month: list[tuple[date, Bucket]]  # every month from the first to the last sale
    top_assets: list[Line]  # empty without a title column
    best_days: list[tuple[date, Bucket]]
    active_days: int
    rows_read: int
    source: str  # encoding and delimiter, for the operators' timeline
    months_hidden: int = 0  # earlier months left out of by_month (MAX_MONTHS_SHOWN)

    @property
    def has_types(self) -> bool:
        return bool(self.by_type)

    @property
    def has_titles(self) -> bool:
        return bool(self.top_assets)


def analyse_file(
    path: Path, *, file_name: str, period: str = "30d", content_type: str | None = None
) -> Report:
    """Read ``path`` (two streaming passes) and aggregate it; raises :class:`ReportError`."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    source = SalesFile(path)
    layout = source.layout
    scan = source.scan()
    wanted = type_key(content_type) if content_type else None
    if wanted is not None:
        if "content_type" not in layout.columns.index:
            raise ReportError(
                f"the file has no content type column, so it cannot be filtered by {content_type!r}"
            )
        if scan.content_types and wanted not in scan.content_types:
            known = ", ".join(sorted(scan.content_types.values())[:10])
            raise ReportError(f"the file has no sales of content type {content_type!r} ({known})")
    days = PERIODS[period]
    end = scan.newest
    start = end - timedelta(days=days - 1) if days is not None and end is not None else None
    sales = source.sales(scan.conventions)
    agg = aggregate(sales, start=start, content_type=wanted)
    return agg.report(
        file_name=file_name,
        period=period,
        content_type=content_type,
        currency=scan.currency or DEFAULT_CURRENCY,
        window=(start, end if start is not None else None),
        rows_read=scan.rows,
        has_titles="title" in layout.columns.index,
        has_types="content_type" in layout.columns.index,
        source=layout.describe(),
    )


class Aggregate:
    """Running totals over a stream of sales."""

    def __init__(self) -> None:
        self.total = Bucket()
        self.types: dict[str, Bucket] = {}
        self.type_names: dict[str, str] = {}
        self.days: dict[date, Bucket] = {}
        self.assets: dict[str, Bucket] = {}
        self.asset_types: dict[str, str] = {}

    def add(self, sale: Sale) -> None:
        amount = sale.amount
        self.total.add(amount)
        key = type_key(sale.content_type)
        bucket = self.types.get(key)
        if bucket is None:
            if len(self.types) >= MAX_TYPES:
                raise _too_many(sale.line, "content types", MAX_TYPES)
            bucket = self.types[key] = Bucket()
            self.type_names[key] = sale.content_type
        bucket.add(amount)
        day = sale.day
        bucket = self.days.get(day)
        if bucket is None:
            bucket = self.days[day] = Bucket()
        bucket.add(amount)
        bucket = self.assets.get(sale.title)
        if bucket is None:
            if len(self.assets) >= MAX_TITLES:
                raise _too_many(sale.line, "titles", MAX_TITLES)
            bucket = self.assets[sale.title] = Bucket()
            self.asset_types[sale.title] = sale.content_type
        bucket.add(amount)

    def report(
        self,
        *,
        file_name: str,
        period: str,
        content_type: str | None,
        currency: str,
        window: tuple[date | None, date | None],
        rows_read: int,
        has_titles: bool,
        has_types: bool,
        source: str,
    ) -> Report:
        # Months are built from days: there are far fewer days than rows.
        months: dict[date, Bucket] = {}
        for day, b in self.days.items():
            m = months.setdefault(day.replace(day=1), Bucket())
            m.sales += b.sales
            m.earnings += b.earnings
        first = min(self.days) if self.days else None
        last = max(self.days) if self.days else None
        by_month: list[tuple[date, Bucket]] = []
        months_hidden = 0
        if first is not None and last is not None:
            spanned = (last.year - first.year) * 12 + last.month - first.month + 1
            months_hidden = max(0, spanned - MAX_MONTHS_SHOWN)
            month = first.replace(day=1)
            for _ in range(months_hidden):
                month = (month + timedelta(days=32)).replace(day=1)
            while month <= last:
                by_month.append((month, months.get(month) or Bucket()))
                month = (month + timedelta(days=32)).replace(day=1)
        by_type = []
        if has_types:
            by_type = [
                Line(self.type_names[k], b.sales, b.earnings)
                for k, b in sorted(
                    self.types.items(), key=lambda kv: (-kv[1].earnings, -kv[1].sales, kv[0])
                )
            ]
        top_assets = []
        if has_titles:
            best = heapq.nsmallest(
                TOP_ASSETS,
                self.assets.items(),
                key=lambda kv: (-kv[1].earnings, -kv[1].sales, kv[0] == UNTITLED, kv[0]),
            )
            top_assets = [
                Line(
                    title,
                    b.sales,
                    b.earnings,
                    self.asset_types[title] if has_types else "",
                )
                for title, b in best
            ]
        best_days = heapq.nsmallest(
            BEST_DAYS, self.days.items(), key=lambda kv: (-kv[1].earnings, -kv[1].sales, kv[0])
        )
        return Report(
            file_name=file_name,
            period=period,
            content_type=content_type,
            currency=currency,
            window_start=window[0],
            window_end=window[1],
            first_sale=first,
            last_sale=last,
            sales=self.total.sales,
            earnings=self.total.earnings,
            by_type=by_type,
            by_month=by_month,
            top_assets=top_assets,
            best_days=best_days,
            active_days=len(self.days),
            rows_read=rows_read,
            source=source,
            months_hidden=months_hidden,
        )


def _too_many(line: int, what: str, limit: int) -> ReportError:
    return ReportError(
        f"line {line:,}: the file has more than {limit:,} different {what}; split it into "
        "smaller files",
        line=line,
    )


def aggregate(
    sales: Iterable[Sale], *, start: date | None = None, content_type: str | None = None
) -> Aggregate:
    """Add every sale on or after ``start`` whose type key is ``content_type`` (when given)."""
    agg = Aggregate()
    add = agg.add
    for sale in sales:
        if start is not None and sale.day < start:
            continue
        if content_type is not None and type_key(sale.content_type) != content_type:
            continue
        add(sale)
    return agg
