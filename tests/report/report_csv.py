"""Writing real CSV exports for the report tests (shared by tests/report and tests/pipeline)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HEADER = ("Date", "Title", "Content Type", "Earnings")

MakeCsv = Callable[..., Path]


def csv_text(
    rows: Iterable[Sequence[object]],
    header: Sequence[str] | None = HEADER,
    delimiter: str = ",",
) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return out.getvalue()
