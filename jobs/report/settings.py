"""The report kind's settings: its price, the largest CSV it takes and its deadline.

Read from the same environment, ``.env`` file and ``$CREDENTIALS_DIRECTORY`` as the framework's
settings; code gets them with :func:`report_settings`.
"""

from __future__ import annotations

from pydantic import Field

from worker.config import KindSettings, Settings, kind_settings


class ReportSettings(KindSettings):
    """Field names are the environment variables, lower-cased."""

    report_price_credits: int = Field(0, ge=0)
    #: The largest CSV accepted, in bytes.
    report_max_bytes: int = Field(200 * 1000 * 1000, gt=0)
    #: Seconds a report may take end to end.
    report_deadline_seconds: float = Field(30 * 60.0, gt=0)


def report_settings(settings: Settings) -> ReportSettings:
    """The report kind's settings, loaded once per ``settings`` object."""
    return kind_settings(settings, ReportSettings)
