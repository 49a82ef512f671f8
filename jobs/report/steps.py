"""The report job's two steps: analyse → deliver. Both are safe to run again.

* analyse: read the stored CSV (two streaming passes), aggregate, render the HTML and write it
  into storage under a stable name (atomically: temp file, then rename). The output depends only
  on the file and the request, so a redelivered analyse writes the same bytes again. A file that
  cannot be read fails the job as USER_ERROR with the line and column (refunded when priced).
* deliver: send the stored HTML as a document with a one-line summary caption, at most once per
  job (``send_once``), then succeed (capture).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from jobs.report import texts
from jobs.report.analyse import analyse_file
from jobs.report.parse import ReportError
from jobs.report.render import render_html, summary_line
from worker.context import StepContext
from worker.errors import ErrorClass, ProviderError
from worker.outcomes import Next, Outcome, Succeed
from worker.telegram import DOCUMENT, Sent, TelegramNotifier

PROVIDER = "report"
OUR_FAULT = "Something went wrong on our side while making your report."


def report_path(ctx: StepContext) -> Path:
    """``<STORAGE_DIR>/report/<nnn>/<job id>/<name>-report.html``: stable per job, and named
    after the user's file so the document reads well in the chat."""
    stem = Path(str(ctx.payload.get("file_name") or "sales")).stem
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:60] or "sales"
    return ctx.services.storage.path_for("report", ctx.job_id, "") / f"{safe}-report.html"


def user_text(message: str) -> str:
    text = message[:1].upper() + message[1:]
    return f"{text.rstrip('.')}. Please fix the file and send it again."


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def analyse(ctx: StepContext) -> Outcome:
    payload = ctx.payload
    source = ctx.services.storage.root / payload["csv"]
    if not source.is_file():
        raise ProviderError(
            ErrorClass.INTERNAL,
            f"the uploaded CSV {payload['csv']} is missing from STORAGE_DIR",
            provider=PROVIDER,
            user_message=OUR_FAULT,
        )
    try:
        report = analyse_file(
            source,
            file_name=payload["file_name"],
            period=payload["period"],
            content_type=payload.get("content_type"),
        )
    except ReportError as err:
        raise ProviderError(
            ErrorClass.USER_ERROR, str(err), provider=PROVIDER, user_message=user_text(str(err))
        ) from None
    html = render_html(report).encode("utf-8")
    dest = report_path(ctx)
    _write(dest, html)
    summary = summary_line(report)
    return Next(
        "deliver",
        event="analysed",
        detail=f"{report.rows_read:,} rows ({report.source}); {summary}; "
        f"{len(html):,} bytes at {dest}",
        state={
            "report": str(dest),
            "report_size": len(html),
            "summary": summary,
            # what the user reads under the document, in their language (summary: operators')
            "caption": texts.caption(ctx.settings, payload.get("language"), report),
            "sales": report.sales,
            "earnings": str(report.earnings),
        },
    )


def deliver(ctx: StepContext) -> Outcome:
    caption = str(ctx.state.get("caption") or ctx.state.get("summary") or "")
    chat_id = ctx.chat_id
    sent: list[Sent] = []
    kept = ctx.state.get("telegram_file_id")
    if kept:  # Telegram keeps the report already: send it by its file_id, no local file needed

        def by_id(tg: TelegramNotifier) -> int:
            sent.append(tg.deliver_file(chat_id, DOCUMENT, file_id=str(kept), caption=caption))
            return sent[-1].message_id

        detail = ctx.send_once("result", caption, by_id)
        return Succeed(None, detail=f"{detail}; by Telegram's file_id, no upload")
    path = ctx.state.get("report")
    stored = (
        ctx.services.storage.existing(Path(path), size=ctx.state.get("report_size"))
        if path
        else None
    )
    if stored is None:
        raise ProviderError(
            ErrorClass.INTERNAL,
            "deliver step reached without its stored report",
            provider=PROVIDER,
            user_message=OUR_FAULT,
        )

    def upload(tg: TelegramNotifier) -> int:
        sent.append(tg.deliver_file(chat_id, DOCUMENT, path=stored.path, caption=caption))
        return sent[-1].message_id

    detail = ctx.send_once("result", caption, upload)
    file_id = sent[-1].file_id if sent else None
    # The file_id Telegram keeps the report under: a resend names it, and needs no STORAGE_DIR.
    return Succeed(
        str(stored.path), detail=detail, state={"telegram_file_id": file_id} if file_id else {}
    )


HANDLERS = {"analyse": analyse, "deliver": deliver}
