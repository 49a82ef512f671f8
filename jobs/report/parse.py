"""Reading a sales export row by row, in constant memory, with errors a seller can act on.

How a file is read
    *Encoding*: a UTF-8 or UTF-16 byte-order mark decides. Otherwise the first MiB is decoded
    as UTF-8, strictly: if that fails the file is cp1251 (Windows Cyrillic, what Excel saves in
    Russia). A first MiB that is plain ASCII proves nothing, so such a file is read as UTF-8
    whose undecodable bytes, should any come later, are read as cp1251.
    *Header*: the first of the first ten non-blank lines whose columns include a date and an
    earnings column (see :mod:`jobs.report.columns`); lines before it (a title, a blank line)
    are skipped. *Delimiter*: sniffed from that header line, the most frequent of ``, ; TAB |``
    outside quotes (a tie goes to the earlier in that list).
    *Rows*: blank rows and a trailing total row (the date cell says ``Total`` / ``Итого`` /
    ``Всего``) are skipped; empty fields past the header's width are ignored, but a row with
    more values than the header has columns is an error (an unquoted decimal comma in a
    comma-separated file would otherwise shift the columns silently). A row that cannot be
    read stops the whole report with :class:`ReportError` naming the line (as a spreadsheet
    numbers it: the header is line 1 in a plain export) and the column, e.g.
    ``line 1,234, column earnings: 'abc' is not a number``.
    *Limits*, checked before the parser's work grows: a line of at most
    :data:`MAX_LINE_CHARS` characters, a record of at most :data:`MAX_LINES_PER_RECORD` lines,
    at most :data:`MAX_COLUMNS` fields in a line; amounts and dates are bounded in
    :mod:`jobs.report.values`. A file over a limit is refused naming the line.

Two passes, one convention
    Some cells mean different things under different conventions: ``1,234`` (one thousand two
    hundred and thirty four, or one point two three four) and ``03/04/2024`` (March 4 or April 3).
    :meth:`SalesFile.scan` reads every row once, checks it, and lets the file decide: the first
    cell that proves a convention (``12,50`` proves a decimal comma, ``1,234.50`` a decimal point,
    ``25/03/2024`` day first) settles it for every ambiguous cell of the file. With no proof a
    semicolon-separated file gets a decimal comma, any other a decimal point, and slashed dates
    are month first (``MM/DD/YYYY``). The scan also finds the newest date, which the period
    filter counts back from. :meth:`SalesFile.sales` then reads the rows again with
    the settled conventions. Memory does not grow with the number of rows in either pass.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import NamedTuple

from jobs.report.columns import ALIASES, FIELD_LABELS, ColumnMap, map_columns
from jobs.report.values import Amount, DateReading, ValueProblem, read_amount, read_date

__all__ = [
    "Conventions",
    "Layout",
    "ReportError",
    "Sale",
    "SalesFile",
    "Scan",
    "detect_encoding",
    "sniff_delimiter",
]

HEAD_BYTES = 1 << 20
#: The longest physical line read (characters); a longer one is refused before it is parsed.
MAX_LINE_CHARS = 64 * 1024
#: The most lines one record may span (a quoted field holding line breaks).
MAX_LINES_PER_RECORD = 100
#: The most columns a header or a row may have.
MAX_COLUMNS = 200
MAX_PREAMBLE_LINES = 10
MAX_TYPES_KEPT = 1000
DELIMITERS = (",", ";", "\t", "|")
TOTAL_WORDS = ("total", "totals", "grand total", "итого", "всего")
NO_COLUMNS = "no usable columns"
UNTITLED = "(untitled)"
NO_TYPE = "(no type)"
_FALLBACK_ERRORS = "report.cp1251-fallback"


def _cp1251_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: bytes that are not UTF-8 are read as cp1251."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("cp1251", errors="replace"), exc.end


codecs.register_error(_FALLBACK_ERRORS, _cp1251_fallback)


class ReportError(Exception):
    """The file cannot be turned into a report. The message is for the user, as is."""

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None):
        self.line = line
        self.column = column
        super().__init__(message)


def cell_error(line: int, column: str, reason: str) -> ReportError:
    return ReportError(f"line {line:,}, column {column}: {reason}", line=line, column=column)


class _Lines:
    """A text file's physical lines, as the csv reader consumes them, each checked before the
    parser sees it: at most :data:`MAX_LINE_CHARS` characters (a file without line breaks is
    refused at its first line, not read whole), and a record (one CSV row, whose quoted values
    may hold line breaks) at most :data:`MAX_LINES_PER_RECORD` lines."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.text = text
        self.number = 0  # physical lines read so far
        self.record_start = 1  # the line the current record began on

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(MAX_LINE_CHARS + 3)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
            raise ReportError(
                f"line {self.number:,} is longer than {MAX_LINE_CHARS:,} characters",
                line=self.number,
            )
        if self.number - self.record_start >= MAX_LINES_PER_RECORD:
            raise ReportError(
                f"line {self.record_start:,}: a quoted value runs over more than "
                f"{MAX_LINES_PER_RECORD} lines (is a closing quote missing?)",
                line=self.record_start,
            )
        return line

    def next_record(self) -> None:
        """The next line read begins a new record."""
        self.record_start = self.number + 1


def _too_wide(line: int, what: str, fields: int) -> ReportError:
    return ReportError(
        f"line {line:,}: {what} has {fields:,} fields, more than the {MAX_COLUMNS:,} accepted",
        line=line,
    )


# --- the file's shape -------------------------------------------------------------------------


def detect_encoding(head: bytes, *, complete: bool) -> str:
    """``utf-8-sig``, ``utf-16``, ``utf-8`` or ``cp1251`` from the first bytes of a file.

    ``complete`` says ``head`` is the whole file (a character cut at its end is then an error).
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=complete)
    except UnicodeDecodeError:
        return "cp1251"
    return "utf-8"


def sniff_delimiter(line: str) -> str:
    """The most frequent of ``, ; TAB |`` outside double quotes (ties: that order)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] else ","


@dataclass(frozen=True)
class Layout:
    """What the head of the file says: how to decode and split it, and which column is which."""

    encoding: str
    delimiter: str
    header_lines: int  # physical lines up to and including the header
    header: tuple[str, ...]
    columns: ColumnMap

    @property
    def width(self) -> int:
        return len(self.header)

    def describe(self) -> str:
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
        return f"{self.encoding}, {names[self.delimiter]}-separated"


@dataclass(frozen=True)
class Conventions:
    decimal_mark: str  # "," or "."
    month_first: bool  # how a slashed date with both parts <= 12 is read


class Sale(NamedTuple):
    line: int
    day: date
    title: str
    content_type: str
    amount: Decimal


@dataclass
class Scan:
    """What the first pass learned (kept small: no rows)."""

    rows: int
    conventions: Conventions
    newest: date | None
    oldest: date | None
    currency: str | None
    #: content-type match key → the type as first written (at most MAX_TYPES_KEPT)
    content_types: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1024)
def type_key(content_type: str) -> str:
    """How content types are compared: case-insensitive, and ``photos`` equals ``photo``."""
    key = " ".join(content_type.casefold().split())
    return key[:-1] if len(key) > 3 and key.endswith("s") and not key.endswith("ss") else key


# --- reading ----------------------------------------------------------------------------------


class _Cells(NamedTuple):
    line: int
    day: DateReading
    amount: Amount
    title: str
    content_type: str


class SalesFile:
    """One CSV export on disk. Every pass opens it afresh and streams it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @cached_property
    def layout(self) -> Layout:
        with self.path.open("rb") as raw:
            head = raw.read(HEAD_BYTES)
            complete = not raw.read(1)
        if not head.strip(b" \t\r\n\x00" + codecs.BOM_UTF8):
            raise ReportError("the file is empty")
        encoding = detect_encoding(head, complete=complete)
        first: tuple[str, ...] | None = None
        seen = 0
        with self._open(encoding) as text:
            lines = _Lines(text)
            for line in lines:
                number = lines.number
                lines.next_record()
                if not line.strip():
                    continue
                seen += 1
                delimiter = sniff_delimiter(line)
                try:
                    header = tuple(next(csv.reader([line], delimiter=delimiter), []))
                except csv.Error as exc:
                    raise ReportError(
                        f"line {number:,}: cannot be read as CSV ({exc})", line=number
                    ) from None
                if len(header) > MAX_COLUMNS:
                    raise _too_wide(number, "the line", len(header))
                columns = map_columns(header)
                if columns.usable:
                    return Layout(encoding, delimiter, number, header, columns)
                if first is None:
                    first = header
                if seen >= MAX_PREAMBLE_LINES:
                    break
        if not seen:
            raise ReportError("the file is empty")
        raise ReportError(_no_columns_message(first or ()))

    def _open(self, encoding: str) -> io.TextIOWrapper:
        errors = _FALLBACK_ERRORS if encoding == "utf-8" else "replace"
        return self.path.open(encoding=encoding, errors=errors, newline="")

    def _cells(self) -> Iterator[_Cells]:
        """Every data row's cells, read but not yet resolved by the file's conventions."""
        layout = self.layout
        idx = layout.columns.index
        names = layout.columns.names
        date_col, earn_col = idx["date"], idx["earnings"]
        title_col, type_col = idx.get("title"), idx.get("content_type")
        needed = max(idx.values()) + 1
        width = layout.width
        hint = ""
        if layout.delimiter == ",":
            hint = '; in a comma-separated file a decimal comma must be quoted ("1,50")'
        ordered = sorted(idx.items(), key=lambda kv: kv[1])
        with self._open(layout.encoding) as text:
            lines = _Lines(text)
            for _ in range(layout.header_lines):
                lines.next_record()
                next(lines, None)
            reader = csv.reader(lines, delimiter=layout.delimiter)
            offset = layout.header_lines
            last = 0
            while True:
                lines.next_record()
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    line = offset + reader.line_num
                    raise ReportError(
                        f"line {line:,}: cannot be read as CSV ({exc})", line=line
                    ) from None
                line = offset + last + 1
                last = reader.line_num
                if len(row) > MAX_COLUMNS:
                    raise _too_wide(line, "the row", len(row))
                if len(row) < needed:
                    if not row or not any(c.strip() for c in row):
                        continue  # a blank line
                    if row[0].strip().casefold() in TOTAL_WORDS and len(row) <= 2:
                        continue
                    for fld, col in ordered:
                        if col >= len(row):
                            raise cell_error(
                                line,
                                names[fld],
                                f"the value is missing (the row has {len(row)} field"
                                f"{'s' if len(row) != 1 else ''}, the header has {layout.width})",
                            )
                elif len(row) > width and any(c.strip() for c in row[width:]):
                    raise ReportError(
                        f"line {line:,}: the row has {len(row)} fields but the header has "
                        f"{width}{hint}",
                        line=line,
                    )
                raw_date = row[date_col]
                raw_amount = row[earn_col]
                if not raw_date.strip() or not raw_amount.strip():
                    if not any(c.strip() for c in row):
                        continue  # a row of empty cells (";;;")
                    if raw_date.strip().casefold() in TOTAL_WORDS or any(
                        c.strip().casefold() in TOTAL_WORDS for c in row[:2]
                    ):
                        continue
                    missing = "date" if not raw_date.strip() else "earnings"
                    raise cell_error(line, names[missing], "the value is missing")
                if raw_date.strip().casefold() in TOTAL_WORDS:
                    continue
                try:
                    day = read_date(raw_date)
                except ValueProblem as p:
                    raise cell_error(line, names["date"], str(p)) from None
                try:
                    amount = read_amount(raw_amount)
                except ValueProblem as p:
                    raise cell_error(line, names["earnings"], str(p)) from None
                title = " ".join(row[title_col].split()) if title_col is not None else ""
                ctype = " ".join(row[type_col].split()) if type_col is not None else ""
                yield _Cells(line, day, amount, title or UNTITLED, ctype or NO_TYPE)

    def scan(self) -> Scan:
        """First pass: check every row, settle the conventions, find the newest date."""
        layout = self.layout
        mark: str | None = None
        order: str | None = None
        currency = layout.columns.currency
        rows = 0
        fixed_new: date | None = None
        fixed_old: date | None = None
        # ambiguous slashed dates, under each order: [newest, oldest]
        month_first: list[date | None] = [None, None]
        day_first: list[date | None] = [None, None]
        types: dict[str, str] = {}
        track_types = "content_type" in layout.columns.index
        for cells in self._cells():
            rows += 1
            amount = cells.amount
            if mark is None and amount.mark is not None:
                mark = amount.mark
            if currency is None and amount.currency is not None:
                currency = amount.currency
            reading = cells.day
            if reading.ambiguous:
                _extend(month_first, reading.month_first)
                _extend(day_first, reading.day_first)
            else:
                if order is None:
                    order = reading.order
                d = reading.value(True)
                if fixed_new is None or d > fixed_new:
                    fixed_new = d
                if fixed_old is None or d < fixed_old:
                    fixed_old = d
            if track_types and len(types) < MAX_TYPES_KEPT:
                types.setdefault(type_key(cells.content_type), cells.content_type)
        if rows == 0:
            raise ReportError("the file has a header but no sales rows")
        if mark is None:
            mark = "," if layout.delimiter == ";" else "."
        is_month_first = order != "day"
        ambiguous = month_first if is_month_first else day_first
        newest = max(_known(fixed_new, ambiguous[0]), default=None)
        oldest = min(_known(fixed_old, ambiguous[1]), default=None)
        return Scan(rows, Conventions(mark, is_month_first), newest, oldest, currency, types)

    def sales(self, conventions: Conventions) -> Iterator[Sale]:
        """Second pass: every sale, read with the file's conventions."""
        mark, month_first = conventions.decimal_mark, conventions.month_first
        for line, reading, amount, title, ctype in self._cells():
            yield Sale(line, reading.value(month_first), title, ctype, amount.value(mark))


def _extend(bounds: list[date | None], d: date | None) -> None:
    if d is None:
        return
    if bounds[0] is None or d > bounds[0]:
        bounds[0] = d
    if bounds[1] is None or d < bounds[1]:
        bounds[1] = d


def _known(*days: date | None) -> list[date]:
    return [d for d in days if d is not None]


def _no_columns_message(header: tuple[str, ...]) -> str:
    found = ", ".join(repr(h.strip()) for h in header if h.strip())[:300] or "none"
    if len(header) < 2:
        # One field: no comma, semicolon, tab or pipe, so not a CSV header. It is not quoted
        # back: a file that is not a CSV at all must not be echoed to whoever sent it.
        found = "none (its first line has no comma, semicolon, tab or pipe)"
    columns = map_columns(header)
    missing = columns.missing() if header else ["date", "earnings"]
    wanted = "; ".join(
        f"{FIELD_LABELS[f]} (e.g. {', '.join(repr(a) for a in ALIASES[f][:3])})" for f in missing
    )
    return f"{NO_COLUMNS}: the file needs {wanted}; its columns are {found}"
