"""The report as one self-contained HTML file, and its one-line summary.

Self-contained: inline CSS and inline SVG charts (bars by month, a donut by content type), no
scripts, fonts, images or links to load, so it opens the same offline, in Telegram's viewer and
in any browser. Every text that came from the file (titles, content types, the file name) is
HTML-escaped. The output depends only on the report, so rendering twice gives the same bytes.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from jobs.report.analyse import Bucket, Line, Report

__all__ = ["money", "period_label", "render_html", "summary_line"]

PREFIX_CURRENCIES = ("$", "€", "£", "¥")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#94a3b8")
DONUT_SLICES = 7  # the rest are drawn as one "other" slice
CENT = Decimal("0.01")


# --- text -------------------------------------------------------------------------------------


def money(amount: Decimal, currency: str) -> str:
    """``$9,123.45``, ``-$1.20``, ``1,234.50 ₽``."""
    q = amount.quantize(CENT, ROUND_HALF_UP)
    sign = "-" if q < 0 else ""
    body = f"{abs(q):,.2f}"
    return (
        f"{sign}{currency}{body}" if currency in PREFIX_CURRENCIES else f"{sign}{body} {currency}"
    )


def short_money(amount: Decimal | float, currency: str) -> str:
    """Axis labels: ``$1.2k``, ``$3M``."""
    v = float(amount)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            text = f"{v / size:.1f}".rstrip("0").rstrip(".") + suffix
            break
    else:
        text = f"{v:.0f}" if v == int(v) else f"{v:.2f}"
    return f"{currency}{text}" if currency in PREFIX_CURRENCIES else f"{text} {currency}"


def day_text(d: date) -> str:
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def month_text(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.year}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def period_label(report: Report) -> str:
    """``last 30 days to 31 Mar 2024`` or ``all sales, 5 Jan 2023 – 31 Mar 2024``."""
    if report.period != "all" and report.window_end is not None:
        days = report.period.rstrip("d")
        return f"last {days} days to {day_text(report.window_end)}"
    if report.first_sale and report.last_sale and report.first_sale != report.last_sale:
        return f"all sales, {day_text(report.first_sale)} – {day_text(report.last_sale)}"
    if report.last_sale:
        return f"all sales, {day_text(report.last_sale)}"
    return "all sales"


def summary_line(report: Report) -> str:
    """The caption: ``1,500 sales, $9,123.45 · last 30 days to 31 Mar 2024``."""
    text = (
        f"{plural(report.sales, 'sale')}, {money(report.earnings, report.currency)}"
        f" · {period_label(report)}"
    )
    if report.content_type:
        text += f" · {report.content_type} only"
    return text


# --- charts -----------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def month_bars(months: list[tuple[date, Bucket]], currency: str) -> str:
    """Bars of earnings per month (a month with a net loss is drawn as an empty bar)."""
    if not months:
        return ""
    width, height, left, bottom, top = 720, 240, 64, 30, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max((max(b.earnings, Decimal(0)) for _, b in months), default=Decimal(0))
    scale = float(peak) or 1.0
    n = len(months)
    slot = plot_w / n
    bar = max(1.0, slot * 0.72)
    every = max(1, math.ceil(n / 12))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Earnings by month" xmlns="http://www.w3.org/2000/svg">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{_num(y)}" y2="{_num(y)}" class="grid"/>'
            f'<text x="{left - 6}" y="{_num(y + 4)}" class="axis" text-anchor="end">'
            f"{escape(short_money(scale * frac if peak else 0, currency))}</text>"
        )
    for i, (month, b) in enumerate(months):
        value = max(float(b.earnings), 0.0)
        h = plot_h * value / scale
        x = left + slot * i + (slot - bar) / 2
        tip = f"{month_text(month)}: {plural(b.sales, 'sale')}, {money(b.earnings, currency)}"
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(top + plot_h - h)}" width="{_num(bar)}" '
            f'height="{_num(h)}" rx="2" class="bar"><title>{escape(tip)}</title></rect>'
        )
        if i % every == 0:
            label = f"{MONTHS[month.month - 1]} ’{month.year % 100:02d}"
            parts.append(
                f'<text x="{_num(x + bar / 2)}" y="{height - 10}" class="axis" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def type_donut(lines: list[Line], currency: str) -> tuple[str, list[tuple[str, Line]]]:
    """A donut of earnings by content type, and (colour, line) for its legend."""
    slices = lines[:DONUT_SLICES]
    rest = lines[DONUT_SLICES:]
    if rest:
        slices = [
            *slices,
            Line(
                f"{len(rest)} other types",
                sum(r.sales for r in rest),
                sum((r.earnings for r in rest), Decimal(0)),
            ),
        ]
    weights = [max(float(s.earnings), 0.0) for s in slices]
    if not sum(weights):  # no positive earnings: share by number of sales instead
        weights = [float(s.sales) for s in slices]
    total = sum(weights) or 1.0
    r, stroke, c = 70, 30, 90
    circumference = 2 * math.pi * r
    parts = [
        f'<svg class="donut" viewBox="0 0 {2 * c} {2 * c}" role="img" '
        f'aria-label="Earnings by content type" xmlns="http://www.w3.org/2000/svg">'
        f'<circle cx="{c}" cy="{c}" r="{r}" fill="none" stroke="#e5e7eb" '
        f'stroke-width="{stroke}"/>'
    ]
    legend = []
    offset = 0.0
    for i, (line, weight) in enumerate(zip(slices, weights, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        legend.append((colour, line))
        if weight <= 0:
            continue
        dash = circumference * weight / total
        tip = f"{line.label}: {plural(line.sales, 'sale')}, {money(line.earnings, currency)}"
        parts.append(
            f'<circle cx="{c}" cy="{c}" r="{r}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke}" stroke-dasharray="{_num(dash)} {_num(circumference)}" '
            f'stroke-dashoffset="{_num(-offset)}" transform="rotate(-90 {c} {c})">'
            f"<title>{escape(tip)}</title></circle>"
        )
        offset += dash
    parts.append("</svg>")
    return "".join(parts), legend


# --- the page ---------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f8fafc;color:#0f172a;
font:15px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:880px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:0 0 12px}
.sub{color:#475569;margin:0 0 20px;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;
margin-bottom:20px}
.card,section{background:#fff;border:1px solid #e2e8f0;border-radius:10px}
.card{padding:12px 14px}
.card .k{color:#64748b;font-size:13px}
.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
section{padding:16px;margin-bottom:16px}
table{width:100%;border-collapse:collapse}
th,td{padding:6px 8px;border-bottom:1px solid #f1f5f9;text-align:left;vertical-align:top}
th{color:#64748b;font-weight:500;font-size:13px}
td.t{overflow-wrap:anywhere}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.chart{width:100%;height:auto;display:block;margin-bottom:12px}
.chart .bar{fill:#2563eb}
.chart .grid{stroke:#e2e8f0;stroke-width:1}
.chart .axis{fill:#64748b;font-size:11px}
.split{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.donut{width:180px;height:180px;flex:none}
.split table{flex:1;min-width:260px}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
.muted{color:#64748b}
footer{color:#94a3b8;font-size:12px;margin-top:24px}
""".strip()


def _table(head: list[tuple[str, bool]], rows: list[list[str]]) -> str:
    """``head``: (label, numeric?); cells are already HTML."""
    th = "".join(f'<th class="num">{h}</th>' if num else f"<th>{h}</th>" for h, num in head)
    body = []
    for row in rows:
        tds = "".join(
            f'<td class="num">{cell}</td>' if num else f'<td class="t">{cell}</td>'
            for cell, (_, num) in zip(row, head, strict=True)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _share(part: Decimal, whole: Decimal) -> str:
    if whole <= 0:
        return "–"
    return f"{float(part / whole) * 100:.1f}%"


def render_html(report: Report) -> str:
    cur = report.currency
    e = escape
    average = report.earnings / report.sales if report.sales else Decimal(0)
    subtitle = f"{e(report.file_name)} · {e(period_label(report))}"
    if report.content_type:
        subtitle += f" · {e(report.content_type)} only"
    cards = [
        ("Sales", f"{report.sales:,}"),
        ("Earnings", money(report.earnings, cur)),
        ("Per sale", money(average, cur)),
        ("Days with sales", f"{report.active_days:,}"),
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Sales report · {e(report.file_name)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<h1>Sales report</h1><p class="sub">{subtitle}</p>',
        '<div class="cards">',
        *(
            f'<div class="card"><div class="k">{e(k)}</div><div class="v">{e(v)}</div></div>'
            for k, v in cards
        ),
        "</div>",
    ]
    if not report.sales:
        out.append(
            '<section><p class="muted">No sales in this period'
            + (f" for {e(report.content_type)}" if report.content_type else "")
            + ".</p></section>"
        )
    else:
        out.append(_months_section(report))
        out.append(_types_section(report))
        out.append(_assets_section(report))
        out.append(_days_section(report))
    out.append(
        f"<footer>{report.rows_read:,} rows read from {e(report.file_name)}. "
        "Periods end at the newest sale date in the file.</footer>"
    )
    out.append("</main></body></html>\n")
    return "\n".join(out)


def _months_section(report: Report) -> str:
    cur = report.currency
    rows = [
        [escape(month_text(m)), f"{b.sales:,}", escape(money(b.earnings, cur))]
        for m, b in reversed(report.by_month)
    ]
    hidden = ""
    if report.months_hidden:
        hidden = (
            f"<p>{plural(report.months_hidden, 'earlier month')} of the file not shown here; "
            "the totals above count them.</p>"
        )
    return (
        "<section><h2>By month</h2>"
        + month_bars(report.by_month, cur)
        + _table([("Month", False), ("Sales", True), ("Earnings", True)], rows)
        + hidden
        + "</section>"
    )


def _types_section(report: Report) -> str:
    if not report.has_types:
        return (
            '<section><h2>By content type</h2><p class="muted">The file has no content type '
            "column.</p></section>"
        )
    cur = report.currency
    donut, legend = type_donut(report.by_type, cur)
    rows = [
        [
            f'<span class="dot" style="background:{colour}"></span>{escape(line.label)}',
            f"{line.sales:,}",
            escape(money(line.earnings, cur)),
            _share(line.earnings, report.earnings),
        ]
        for colour, line in legend
    ]
    table = _table(
        [("Content type", False), ("Sales", True), ("Earnings", True), ("Share", True)], rows
    )
    return f'<section><h2>By content type</h2><div class="split">{donut}{table}</div></section>'


def _assets_section(report: Report) -> str:
    if not report.has_titles:
        return (
            '<section><h2>Top assets</h2><p class="muted">The file has no title column.</p>'
            "</section>"
        )
    cur = report.currency
    head = [("#", True), ("Asset", False)]
    if report.has_types:
        head.append(("Type", False))
    head += [("Sales", True), ("Earnings", True)]
    rows = []
    for rank, line in enumerate(report.top_assets, 1):
        row = [str(rank), escape(line.label)]
        if report.has_types:
            row.append(escape(line.note))
        row += [f"{line.sales:,}", escape(money(line.earnings, cur))]
        rows.append(row)
    title = f"Top {len(report.top_assets)} asset{'s' if len(report.top_assets) != 1 else ''}"
    return f"<section><h2>{title}</h2>{_table(head, rows)}</section>"


def _days_section(report: Report) -> str:
    cur = report.currency
    rows = [
        [escape(day_text(d)), f"{b.sales:,}", escape(money(b.earnings, cur))]
        for d, b in report.best_days
    ]
    table = _table([("Day", False), ("Sales", True), ("Earnings", True)], rows)
    return f"<section><h2>Best days</h2>{table}</section>"
