"""Reading whole files: encodings, delimiters, conventions, broken rows, and bounded memory."""

from __future__ import annotations

import codecs
import random
import time
import tracemalloc
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.report.analyse import analyse_file
from jobs.report.parse import (
    ReportError,
    Sale,
    SalesFile,
    detect_encoding,
    sniff_delimiter,
    type_key,
)
from jobs.report.values import read_amount, read_date
from tests.report.report_csv import MakeCsv, csv_text

D = Decimal
CYRILLIC_ROWS = [
    ("2024-03-01", "Закат над морем", "Фото", "1,50"),
    ("2024-03-02", "Кот в шляпе", "Видео", "12,25"),
    ("2024-03-02", "Ёлка; зимой", "Фото", "0,25"),
]


def read_all(path: Path) -> tuple[SalesFile, list[Sale]]:
    source = SalesFile(path)
    return source, list(source.sales(source.scan().conventions))


@pytest.mark.parametrize("delimiter", [",", ";"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251"])
def test_each_delimiter_and_encoding(make_csv: MakeCsv, delimiter: str, encoding: str) -> None:
    path = make_csv(CYRILLIC_ROWS, delimiter=delimiter, encoding=encoding)
    if encoding == "utf-8-sig":
        assert path.read_bytes().startswith(codecs.BOM_UTF8)
    source, sales = read_all(path)
    assert source.layout.encoding == encoding
    assert source.layout.delimiter == delimiter
    assert [s.title for s in sales] == ["Закат над морем", "Кот в шляпе", "Ёлка; зимой"]
    assert [s.content_type for s in sales] == ["Фото", "Видео", "Фото"]
    assert [s.amount for s in sales] == [D("1.50"), D("12.25"), D("0.25")]
    assert [s.line for s in sales] == [2, 3, 4]


def test_russian_headers_in_cp1251(make_csv: MakeCsv) -> None:
    path = make_csv(
        CYRILLIC_ROWS,
        header=("Дата", "Название", "Тип", "Сумма, руб."),
        delimiter=";",
        encoding="cp1251",
    )
    source, sales = read_all(path)
    assert source.layout.columns.index == {"date": 0, "title": 1, "content_type": 2, "earnings": 3}
    assert sum(s.amount for s in sales) == D("14.00")
    assert source.scan().currency == "₽"


def test_cp1251_after_a_plain_ascii_first_mebibyte(make_csv: MakeCsv) -> None:
    ascii_rows = [("2024-01-01", f"Asset {i}", "photo", "1.00") for i in range(40_000)]
    text = csv_text(ascii_rows) + csv_text([("2024-01-02", "Берёзы", "photo", "2.00")], header=None)
    path = make_csv(data=text.encode("cp1251"))
    assert path.stat().st_size > 1 << 20
    source, sales = read_all(path)
    assert source.layout.encoding == "utf-8"  # the first MiB proves nothing...
    assert sales[-1].title == "Берёзы"  # ...and the cp1251 bytes later are still read right
    assert len(sales) == 40_001


def test_utf16_tab_separated(make_csv: MakeCsv) -> None:
    path = make_csv(CYRILLIC_ROWS, delimiter="\t", encoding="utf-16")
    source, sales = read_all(path)
    assert (source.layout.encoding, source.layout.delimiter) == ("utf-16", "\t")
    assert sales[1].title == "Кот в шляпе"


def test_detect_encoding() -> None:
    assert detect_encoding(b"Date,Amount\n", complete=True) == "utf-8"
    assert detect_encoding(codecs.BOM_UTF8 + b"Date", complete=True) == "utf-8-sig"
    assert detect_encoding("Дата".encode("cp1251"), complete=True) == "cp1251"
    cut = "Дата".encode()[:-1]  # a chunk may end inside a character
    assert detect_encoding(cut, complete=False) == "utf-8"
    assert detect_encoding(cut, complete=True) == "cp1251"


def test_sniff_delimiter() -> None:
    assert sniff_delimiter("Date,Title,Earnings\r\n") == ","
    assert sniff_delimiter("Date;Title;Earnings\n") == ";"
    assert sniff_delimiter('"Date, sold";"Title";Earnings') == ";"
    assert sniff_delimiter("Date\tTitle") == "\t"
    assert sniff_delimiter("Date") == ","


def test_decimal_commas_and_grouping(make_csv: MakeCsv) -> None:
    rows = [
        ("2024-03-01", "a", "photo", "12,50"),
        ("2024-03-01", "b", "photo", "1 234,50"),
        ("2024-03-01", "c", "photo", "1.234,50"),
        ("2024-03-01", "d", "photo", "1,234"),  # ambiguous: this file's mark is the comma
        ("2024-03-01", "e", "photo", "€0,33"),
    ]
    _, sales = read_all(make_csv(rows, delimiter=";"))
    assert [s.amount for s in sales] == [
        D("12.50"),
        D("1234.50"),
        D("1234.50"),
        D("1.234"),
        D("0.33"),
    ]


def test_the_first_proof_settles_ambiguous_amounts_in_the_whole_file(make_csv: MakeCsv) -> None:
    rows = [("2024-03-01", "a", "photo", "1,234"), ("2024-03-02", "b", "photo", "2,50")]
    _, sales = read_all(make_csv(rows))  # comma-separated, but 2,50 proves a decimal comma
    assert [s.amount for s in sales] == [D("1.234"), D("2.50")]
    rows = [("2024-03-01", "a", "photo", "1,234"), ("2024-03-02", "b", "photo", "2.50")]
    _, sales = read_all(make_csv(rows))
    assert [s.amount for s in sales] == [D(1234), D("2.50")]
    _, sales = read_all(make_csv([("2024-03-01", "a", "photo", "1,234")]))  # no proof: by delimiter
    assert sales[0].amount == D(1234)
    _, sales = read_all(make_csv([("2024-03-01", "a", "photo", "1.234")], delimiter=";"))
    assert sales[0].amount == D(1234)


def test_slashed_dates_are_month_first_unless_the_file_proves_otherwise(make_csv: MakeCsv) -> None:
    rows = [("03/04/2024", "a", "photo", "1"), ("03/20/2024", "b", "photo", "1")]
    source, sales = read_all(make_csv(rows))
    assert [s.day for s in sales] == [date(2024, 3, 4), date(2024, 3, 20)]
    assert source.scan().newest == date(2024, 3, 20)
    rows = [("03/04/2024", "a", "photo", "1"), ("20/03/2024", "b", "photo", "1")]
    source, sales = read_all(make_csv(rows))
    assert [s.day for s in sales] == [date(2024, 4, 3), date(2024, 3, 20)]
    assert source.scan().newest == date(2024, 4, 3)
    rows = [("15.03.2024", "a", "photo", "1"), ("2024-03-16", "b", "photo", "1")]
    _, sales = read_all(make_csv(rows))
    assert [s.day for s in sales] == [date(2024, 3, 15), date(2024, 3, 16)]


def test_extra_columns_any_order_blank_lines_and_totals(make_csv: MakeCsv) -> None:
    text = (
        "Sales export for contributor 42\r\n"
        "\r\n"
        "ID;Earnings (USD);Media Type;Asset;Sale Date;Country\r\n"
        "1;0,50;photo;Cat;2024-01-01;DE\r\n"
        "\r\n"
        "2;1,50;;;2024-01-02;FR\r\n"
        ";;;;;\r\n"
        "Total;2,00;;;;\r\n"
    )
    source, sales = read_all(make_csv(text=text))
    assert source.layout.header_lines == 3
    assert [(s.line, s.title, s.content_type, s.amount) for s in sales] == [
        (4, "Cat", "photo", D("0.50")),
        (6, "(untitled)", "(no type)", D("1.50")),
    ]


def test_quoted_newlines_keep_line_numbers_right(make_csv: MakeCsv) -> None:
    text = 'Date,Title,Earnings\n2024-01-01,"two\nlines",1\n2024-01-02,ok,abc\n'
    with pytest.raises(ReportError, match=r"^line 4, column Earnings: 'abc' is not a number$"):
        read_all(make_csv(text=text))


BROKEN = [
    (("2024-03-03", "c", "photo", "abc"), "line 4, column Earnings: 'abc' is not a number"),
    (("2024-13-03", "c", "photo", "1"), "line 4, column Date: '2024-13-03' is not a date"),
    (("tomorrow", "c", "photo", "1"), "line 4, column Date: 'tomorrow' is not a date"),
    (("2024-03-03", "c", "photo", ""), "line 4, column Earnings: the value is missing"),
    (("", "c", "photo", "1.00"), "line 4, column Date: the value is missing"),
    (
        ("2024-03-03", "c"),
        "line 4, column Content Type: the value is missing (the row has 2 fields",
    ),
    (("2024-03-03",), "line 4, column Title: the value is missing (the row has 1 field,"),
]


@pytest.mark.parametrize(("bad", "message"), BROKEN)
def test_broken_rows_name_line_and_column(
    make_csv: MakeCsv, bad: tuple[str, ...], message: str
) -> None:
    rows = [("2024-03-01", "a", "photo", "1.00"), ("2024-03-02", "b", "video", "2.00"), bad]
    with pytest.raises(ReportError) as info:
        read_all(make_csv(rows))
    assert str(info.value).startswith(message)
    assert info.value.line == 4


def test_more_values_than_columns_is_an_error(make_csv: MakeCsv) -> None:
    text = "Date,Title,Earnings\n2024-01-01,a,1.50\n2024-01-02,b,1,50\n"
    with pytest.raises(ReportError) as info:
        read_all(make_csv(text=text))
    assert str(info.value) == (
        "line 3: the row has 4 fields but the header has 3; in a comma-separated file a "
        'decimal comma must be quoted ("1,50")'
    )
    # empty trailing fields are fine (some exports end every row with a delimiter)
    _, sales = read_all(make_csv(text="Date;Earnings\n2024-01-01;1,50;;\n"))
    assert sales[0].amount == D("1.50")


def test_line_numbers_are_written_with_thousands_separators(make_csv: MakeCsv) -> None:
    rows: list[tuple[str, ...]] = [("2024-03-01", "a", "photo", "1.00")] * 1232
    rows.append(("2024-03-01", "a", "photo", "abc"))
    with pytest.raises(ReportError, match=r"^line 1,234, column Earnings: 'abc' is not a number$"):
        read_all(make_csv(rows))


def test_lowercase_headers_give_the_example_message(make_csv: MakeCsv) -> None:
    rows = [("2024-03-01", "a", "photo", "abc")]
    path = make_csv(rows, header=("date", "title", "type", "earnings"))
    with pytest.raises(ReportError, match=r"^line 2, column earnings: 'abc' is not a number$"):
        read_all(path)


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\n\r\n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\n  \n", "\n".encode("utf-16")],
    ids=["zero-bytes", "blank-lines", "bom-only", "bom-and-blanks", "utf-16-blank"],
)
def test_empty_file(make_csv: MakeCsv, data: bytes) -> None:
    with pytest.raises(ReportError, match=r"^the file is empty$"):
        read_all(make_csv(data=data))


def test_header_without_rows(make_csv: MakeCsv) -> None:
    with pytest.raises(ReportError, match="no sales rows"):
        read_all(make_csv([]))


def test_no_usable_columns(make_csv: MakeCsv) -> None:
    path = make_csv([("1", "2", "3")], header=("Foo", "Bar", "Title"))
    with pytest.raises(ReportError) as info:
        read_all(path)
    text = str(info.value)
    assert text.startswith("no usable columns: the file needs date")
    assert "earnings" in text and "'Foo', 'Bar', 'Title'" in text


def test_only_earnings_is_not_enough(make_csv: MakeCsv) -> None:
    with pytest.raises(ReportError, match=r"needs date \(e\.g\. 'date'"):
        read_all(make_csv([("1",)], header=("Earnings",)))


def test_type_key() -> None:
    assert type_key("Photos") == type_key(" photo ") == "photo"
    assert type_key("Glass") == "glass"


# --- a large export ---------------------------------------------------------------------------

TYPES = ("photo", "video", "vector", "illustration")


def write_export(path: Path, rows: int, *, titles: int = 2000, seed: int = 7) -> Decimal:
    """A realistic export (~58 bytes a row); returns the exact total of its earnings."""
    rng = random.Random(seed)
    start = date(2022, 1, 1)
    total = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("Sale Date,Asset ID,Title,Content Type,Earnings (USD),License\r\n")
        for i in range(rows):
            day = start + timedelta(days=rng.randrange(800))
            cents = rng.randrange(10, 5000)
            total += cents
            f.write(
                f'{day.isoformat()},{i},"Asset {rng.randrange(titles)}, sunset",'
                f"{rng.choice(TYPES)},{cents // 100}.{cents % 100:02d},standard\r\n"
            )
    return Decimal(total) / 100


def _peak_bytes(path: Path) -> int:
    read_amount.cache_clear()
    read_date.cache_clear()
    type_key.cache_clear()
    tracemalloc.start()
    try:
        report = analyse_file(path, file_name=path.name, period="all")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.rows_read > 0
    return peak


def test_100k_rows_complete_in_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    total = write_export(big, 100_000)
    small = tmp_path / "small.csv"
    write_export(small, 20_000)
    assert big.stat().st_size > 5_000_000

    started = time.perf_counter()
    report = analyse_file(big, file_name="big.csv", period="all")
    elapsed = time.perf_counter() - started
    assert report.rows_read == report.sales == 100_000
    assert report.earnings == total
    assert sum(b.sales for _, b in report.by_month) == 100_000
    assert len(report.top_assets) == 10

    peak_big, peak_small = _peak_bytes(big), _peak_bytes(small)
    print(
        f"\n100k rows: {100_000 / elapsed:,.0f} rows/s end to end (two passes); peak traced "
        f"memory {peak_big / 1e6:.1f} MB (20k rows: {peak_small / 1e6:.1f} MB)"
    )
    # Streaming: memory follows distinct assets and days (the same in both files), not rows.
    assert peak_big < 50_000_000
    assert peak_big < peak_small * 1.5 + 1_000_000


def test_last_30_days_of_a_large_export(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    write_export(big, 100_000)
    report = analyse_file(big, file_name="big.csv", period="30d")
    assert report.window_end == report.last_sale
    assert report.window_start == report.last_sale - timedelta(days=29)  # type: ignore[operator]
    assert 0 < report.sales < 100_000
    assert report.first_sale is not None and report.first_sale >= report.window_start
