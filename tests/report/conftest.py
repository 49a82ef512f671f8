"""Fixtures for the report tests: real CSV files written into ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from tests.report.report_csv import HEADER, MakeCsv, csv_text


@pytest.fixture
def make_csv(tmp_path: Path) -> MakeCsv:
    """``make_csv(rows, header=..., delimiter=",", encoding="utf-8", name="sales.csv")``; rows
    may also be given as a ready string (``text=``) or bytes (``data=``)."""

    def make(
        rows: Iterable[Sequence[object]] = (),
        *,
        header: Sequence[str] | None = HEADER,
        delimiter: str = ",",
        encoding: str = "utf-8",
        name: str = "sales.csv",
        text: str | None = None,
        data: bytes | None = None,
    ) -> Path:
        path = tmp_path / name
        if data is None:
            body = text if text is not None else csv_text(rows, header, delimiter)
            data = body.encode(encoding)
        path.write_bytes(data)
        return path

    return make
