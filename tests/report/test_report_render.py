"""The HTML report: self-contained, escaped, well-formed charts, and the one-line summary."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from jobs.report.analyse import Report, analyse_file
from jobs.report.render import money, render_html, summary_line
from tests.report.report_csv import MakeCsv

EVIL = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def report_of(make_csv: MakeCsv, rows, **kwargs) -> Report:  # type: ignore[no-untyped-def]
    return analyse_file(make_csv(rows), **{"file_name": "sales.csv", "period": "all", **kwargs})


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_user_text_is_escaped(make_csv: MakeCsv) -> None:
    rows = [("2024-01-01", EVIL, EVIL, "1.00"), ("2024-02-01", "ok", "photo", "2.00")]
    report = analyse_file(make_csv(rows), file_name=f"{EVIL}.csv", period="all", content_type=EVIL)
    html = render_html(report)
    parsed = Collect()
    parsed.feed(html)
    assert not [t for t, _ in parsed.tags if t in ("script", "img", "iframe", "object", "link")]
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert EVIL in "".join(parsed.text)  # shown to the reader as the text it was


def test_self_contained_and_well_formed_svg(make_csv: MakeCsv) -> None:
    rows = [
        (f"2023-{m:02d}-01", f"Asset {m % 4}", ["photo", "video", "vector"][m % 3], f"{m}.00")
        for m in range(1, 13)
    ]
    html = render_html(report_of(make_csv, rows))
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert "<script" not in html.lower()
    urls = re.findall(r"""(?:src|href)\s*=|url\(|@import|https?://[^"\s]*""", html)
    assert set(urls) <= {"http://www.w3.org/2000/svg"}
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2  # bars by month, donut by content type
    bars = ET.fromstring(svgs[0])
    rects = bars.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 12
    donut = ET.fromstring(svgs[1])
    assert len(donut.findall("{http://www.w3.org/2000/svg}circle")) == 1 + 3


def test_render_is_deterministic(make_csv: MakeCsv) -> None:
    rows = [("2024-01-01", "a", "photo", "1.00")]
    assert render_html(report_of(make_csv, rows)) == render_html(report_of(make_csv, rows))


def test_sections_left_out_without_columns(make_csv: MakeCsv) -> None:
    path = make_csv([("2024-01-01", "1.00")], header=("Date", "Earnings"))
    html = render_html(analyse_file(path, file_name="s.csv", period="all"))
    assert "no content type column" in html and "no title column" in html


def test_empty_period_renders(make_csv: MakeCsv) -> None:
    rows = [("2024-01-01", "a", "photo", "1.00"), ("2024-03-01", "b", "video", "1.00")]
    report = report_of(make_csv, rows, period="7d", content_type="photo")
    assert report.sales == 0
    assert "No sales in this period for photo." in render_html(report)
    assert summary_line(report) == "0 sales, $0.00 · last 7 days to 1 Mar 2024 · photo only"


def test_summary_line(make_csv: MakeCsv) -> None:
    rows = [("2024-03-31", "a", "photo", "6.09")] * 1499 + [("2024-01-05", "b", "photo", "-5.46")]
    report = report_of(make_csv, rows)
    assert summary_line(report) == "1,500 sales, $9,123.45 · all sales, 5 Jan 2024 – 31 Mar 2024"
    one = report_of(make_csv, [("2024-03-31", "a", "photo", "1,5")], period="30d")
    assert summary_line(one) == "1 sale, $1.50 · last 30 days to 31 Mar 2024"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (Decimal("9123.455"), "$", "$9,123.46"),
        (Decimal("-1.2"), "$", "-$1.20"),
        (Decimal("1234.5"), "₽", "1,234.50 ₽"),
        (Decimal(0), "€", "€0.00"),
    ],
)
def test_money(amount: Decimal, currency: str, text: str) -> None:
    assert money(amount, currency) == text


def test_negative_month_and_all_negative_types(make_csv: MakeCsv) -> None:
    rows = [("2024-01-01", "a", "photo", "-1.00"), ("2024-02-01", "a", "photo", "-2.00")]
    html = render_html(report_of(make_csv, rows))
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        ET.fromstring(svg)
    assert 'height="0"' in svgs[0]  # a month with a net loss is an empty bar
