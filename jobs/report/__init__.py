"""The sales report job: a stock seller's CSV export → an HTML analytics report in the chat.

This module is what the framework and the bot need to *submit* a report (validation, which also
copies the CSV into storage, price and deadline). The steps live in :mod:`jobs.report.steps`
(``analyse`` → ``deliver``) and are only imported by workers.

The stored payload::

    {"csv": "report/uploads/ab/<sha256>.csv",  # the stored copy, relative to STORAGE_DIR
     "file_name": "sales.csv", "size": 123456, "sha256": "<64 hex digits>",
     "period": "30d",                          # 7d | 30d | 90d | all
     "content_type": "photo"}                  # or null: every content type
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.report.retention import prune_uploads
from jobs.report.settings import ReportSettings, report_settings
from jobs.report.texts import TEXTS
from jobs.report.upload import store_upload, stored_upload
from worker import validation as v
from worker.config import Settings
from worker.errors import InvalidRequest
from worker.kinds import JobKind
from worker.texts import language_of

#: Periods a report may cover, counted back from the newest sale date in the file.
PERIOD_CHOICES = ("7d", "30d", "90d", "all")
DEFAULT_PERIOD = "30d"
REQUEST_FIELDS = ("csv", "period", "content_type", "file_name", "size", "sha256", "language")


def validate_request(request: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The stored payload of a report job, or :class:`InvalidRequest` naming the bad field.

    ``request["csv"]`` is the path of the user's file; it is checked and copied into storage.
    A request carrying ``sha256`` (a clone or retry of a stored payload) names an upload that is
    already stored instead.
    """
    request = v.mapping("request", request, known=REQUEST_FIELDS)
    period = request.get("period", DEFAULT_PERIOD)
    if period is None:
        period = DEFAULT_PERIOD
    if not isinstance(period, str) or period.strip().lower() not in PERIOD_CHOICES:
        raise InvalidRequest("period", f"must be one of {', '.join(PERIOD_CHOICES)}")
    content_type = v.text("content_type", request.get("content_type"), max_len=100, required=False)
    root = Path(settings.storage_dir)
    if "sha256" in request:
        upload = stored_upload(request, root)
    else:
        max_bytes = report_settings(settings).report_max_bytes
        upload = store_upload(request.get("csv"), root, max_bytes=max_bytes)
    payload: dict[str, Any] = {
        "csv": upload.relative,
        "file_name": upload.file_name,
        "size": upload.size,
        "sha256": upload.sha256,
        "period": period.strip().lower(),
        "content_type": content_type,
    }
    language = language_of(request.get("language"))  # Telegram's language_code, for the texts
    if language is not None:
        payload["language"] = language
    return payload


KIND = JobKind(
    name="report",
    steps=("analyse", "deliver"),
    validate=validate_request,
    price=lambda s, payload: report_settings(s).report_price_credits,
    deadline=lambda s, payload: report_settings(s).report_deadline_seconds,
    handlers_module="jobs.report.steps",
    settings_model=ReportSettings,
    texts=TEXTS,
    cli_module="jobs.report.cli",
    prune_shared=prune_uploads,
)
