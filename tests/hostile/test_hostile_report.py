"""Hostile CSV reports (issue 22, findings 2, 4 and 5): an upload is stored 0600 and a file that
is not a CSV is refused without a word of its content; a file built to exhaust CPU, memory or
disk is refused early, naming the line; values that used to crash the step are a USER_ERROR
naming the line."""

from __future__ import annotations

import os
import resource
import stat
import time
from pathlib import Path

import pytest

from jobs.report.analyse import MAX_MONTHS_SHOWN, analyse_file
from jobs.report.parse import MAX_COLUMNS, MAX_LINE_CHARS, ReportError
from jobs.report.render import render_html
from worker.client import Client, InvalidRequest
from worker.config import Settings
from worker.db import Database

HEADER = "Date,Title,Content Type,Earnings\r\n"
SECRET_LINE = "root:$6$saltsalt$Q9cX0mVw4bHqJ2hashhashhash:19000:0:99999:7:::"


def _counts(db: Database) -> tuple[object, ...]:
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM jobs) j, (SELECT count(*) FROM transfers) t,"
        " (SELECT count(*) FROM requests) r"
    )
    assert row is not None
    return tuple(row.values())


def _stored(settings: Settings) -> list[Path]:
    root = Path(settings.storage_dir) / "report" / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- finding 2: uploads -----------------------------------------------------------------------


def test_a_stored_upload_is_private(client: Client, settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "sales.csv"
    src.write_text(HEADER + "2024-03-01,Cat,photo,1.50\r\n")
    src.chmod(0o644)
    old = os.umask(0o022)
    try:
        client.submit_report(7, None, src)
    finally:
        os.umask(old)
    (stored,) = _stored(settings)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        (SECRET_LINE + "\ndaemon:*:19000:0:99999:7:::\n").encode(),  # /etc/shadow
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4,  # a binary
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        b"DATABASE_URL=postgresql://app:hunter2@db/worker\nSECRET=abc\n",
    ],
    ids=["shadow", "ssh-key", "elf", "pdf", "env"],
)
def test_a_file_that_is_not_a_csv_is_refused_without_echo(
    client: Client, db: Database, settings: Settings, tmp_path: Path, content: bytes
) -> None:
    src = tmp_path / "shadow"
    src.write_bytes(content)
    before = _counts(db)
    with pytest.raises(InvalidRequest) as err:
        client.submit_report(7, None, src)
    assert err.value.field == "csv"
    text = str(err.value)
    for token in (b"root", b"$6$", b"OPENSSH", b"b3Bl", b"ELF", b"PDF", b"hunter2", b"daemon"):
        assert token.decode() not in text, text
    assert _counts(db) == before
    assert _stored(settings) == []


def test_the_analyse_step_does_not_quote_a_line_without_delimiters(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(SECRET_LINE.replace(":", "") + "\n")
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="x.csv")
    assert "saltsalt" not in str(err.value)


# --- finding 4: CPU, memory and disk ----------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_a_file_without_line_breaks_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "flat.csv"
    with path.open("w") as f:
        f.write("Date,Earnings,")
        for _ in range(40):
            f.write("x," * 500_000)  # 40 MB, one line
    start = _cpu()
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="flat.csv")
    assert _cpu() - start < 2.0
    assert err.value.line == 1 and f"{MAX_LINE_CHARS:,}" in str(err.value)


def test_a_long_data_line_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        HEADER + "2024-03-01,Cat,photo,1.50\r\n" + "2024-03-02,Dog,photo,1" + "0" * 10**6
    )
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="long.csv")
    assert err.value.line == 3


def test_a_row_of_millions_of_empty_fields_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(HEADER + "2024-03-01,Cat,photo,1.50" + "," * 20_000_000 + "\r\n")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="wide.csv")
    assert err.value.line == 2
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 100_000  # was 428 MB


def test_a_row_wider_than_the_column_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(HEADER + "2024-03-01,Cat,photo,1.50" + "," * MAX_COLUMNS + "\r\n")
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="wide.csv")
    assert err.value.line == 2 and f"{MAX_COLUMNS:,}" in str(err.value)


def test_a_header_wider_than_the_column_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    extra = ",".join(f"c{i}" for i in range(MAX_COLUMNS))
    path.write_text(f"Date,Earnings,{extra}\r\n2024-03-01,1.50\r\n")
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="wide.csv")
    assert err.value.line == 1


def test_a_multiline_record_cannot_grow_without_bound(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(HEADER + '2024-03-01,"' + "x\n" * 200_000 + '",photo,1.50\r\n')
    start = time.monotonic()
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="quoted.csv")
    assert time.monotonic() - start < 5
    assert err.value.line == 2


@pytest.mark.parametrize(
    ("first", "last"), [("0001-01-01", "9998-12-31"), ("1900-01-01", "2024-01-01")]
)
def test_implausible_dates_are_refused_naming_the_line(
    tmp_path: Path, first: str, last: str
) -> None:
    path = tmp_path / "dates.csv"
    path.write_text(HEADER + f"2024-03-01,Cat,photo,1\r\n{first},A,photo,1\r\n{last},B,photo,1\r\n")
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="dates.csv", period="all")
    assert err.value.line == 3 and err.value.column == "Date"


def test_a_long_history_shows_its_newest_months(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(HEADER + "1980-01-15,Old,photo,1\r\n2079-12-15,New,photo,2\r\n")
    report = analyse_file(path, file_name="long.csv", period="all")
    assert len(report.by_month) == MAX_MONTHS_SHOWN
    assert report.by_month[-1][0].year == 2079
    html = render_html(report)
    assert len(html) < 500_000
    assert "earlier month" in html
    assert report.sales == 2  # the totals still count every sale


# --- finding 5: values that crashed the step --------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("2024-03-02,Dog,photo,1" + "0" * 30, "Earnings"),
        ("2024-03-02,Dog,photo,-1" + "0" * 30, "Earnings"),
        ("2024-03-02,Dog,photo,0.0000000000000000000000000000000000001", "Earnings"),
        ("9999-12-31,Dog,photo,1", "Date"),
        ("12/31/9999,Dog,photo,1", "Date"),
        ("31.12.9999,Dog,photo,1", "Date"),
    ],
)
def test_values_that_crashed_are_user_errors_naming_the_line(
    tmp_path: Path, row: str, column: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "2024-03-01,Cat,photo,1.50\r\n" + row + "\r\n")
    with pytest.raises(ReportError) as err:
        report = analyse_file(path, file_name="bad.csv", period="all")
        render_html(report)  # before: InvalidOperation / OverflowError here
    assert err.value.line == 3 and err.value.column == column
    assert str(err.value).startswith("line 3, column ")


def test_a_header_field_over_128_kib_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text('Date,Earnings,"' + "h" * (130 * 1024) + '"\r\n2024-03-01,1\r\n')
    with pytest.raises(ReportError) as err:
        analyse_file(path, file_name="big.csv")
    assert err.value.line == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("\r\n\r\n", "the file is empty"),
        ("Foo;Bar\r\n1;2\r\n", "is not a sales CSV"),
        ("Date;Earnings" + ";x" * MAX_COLUMNS + "\r\n", f"more than the {MAX_COLUMNS:,}"),
    ],
)
def test_a_csv_without_usable_columns_is_refused_at_submit(
    client: Client, db: Database, settings: Settings, tmp_path: Path, content: str, reason: str
) -> None:
    src = tmp_path / "broken.csv"
    src.write_text(content)
    client.grant(7, 5)
    before = _counts(db)
    with pytest.raises(InvalidRequest) as err:
        client.submit_report(7, None, src)
    assert reason in str(err.value) and "Foo" not in str(err.value)
    assert _counts(db) == before and client.balance(7).available == 5
    assert _stored(settings) == []


def test_distinct_titles_and_types_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobs.report.analyse as analyse

    monkeypatch.setattr(analyse, "MAX_TITLES", 50)
    monkeypatch.setattr(analyse, "MAX_TYPES", 5)
    titles = tmp_path / "titles.csv"
    titles.write_text(HEADER + "".join(f"2024-03-01,T{i},photo,1\r\n" for i in range(60)))
    with pytest.raises(ReportError) as err:
        analyse_file(titles, file_name="titles.csv", period="all")
    assert err.value.line == 52 and "50" in str(err.value)
    types = tmp_path / "types.csv"
    types.write_text(HEADER + "".join(f"2024-03-01,T,type{i},1\r\n" for i in range(9)))
    with pytest.raises(ReportError) as err:
        analyse_file(types, file_name="types.csv", period="all")
    assert err.value.line == 7
