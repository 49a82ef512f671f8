"""The summary a request of several videos gets once its last job ended (``JobKind.summary``).

"3 of 3 videos of “Mug” are ready." / "2 of 3 videos of “Mug” are ready, 1 failed and 1 credit
was refunded." In the user's language, with the delivered video's buttons ("Make another with
this product", pointing at the last video that succeeded, else the first job; "Back to menu"
with ``VIDEO_MENU_BUTTON``). The framework decides when it is due and sends it once
(``worker.notifications``); this module only writes it. The title is the user's own text and
is sent as plain text (no parse mode), so it needs no escaping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jobs.video.texts import CATALOGUE, text
from worker.kinds import Message, RequestTally

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = ["summary"]


def summary(settings: Settings | None, payload: Mapping[str, Any], tally: RequestTally) -> Message:
    """The request's summary in the language of ``payload`` (the button job's)."""
    # Worker-side only: the bot's process, which imports this kind to submit, needs neither.
    from jobs.video.settings import video_settings
    from jobs.video.steps import MENU_DATA, again_data
    from worker.telegram import inline_keyboard

    language = payload.get("language")
    title = str(payload.get("title") or "…")
    ready = CATALOGUE.count(
        settings, language, "summary_ready", tally.succeeded, total=tally.total, title=title
    )
    parts = {
        "failed": ("summary_failed", tally.failed),
        "cancelled": ("summary_cancelled", tally.cancelled),
        "refund": ("summary_refund", tally.refunded),
    }
    pieces = {
        name: CATALOGUE.count(settings, language, key, n) if n else ""
        for name, (key, n) in parts.items()
    }
    message = CATALOGUE.text(settings, language, "summary", ready=ready, **pieces)
    rows = [[(text(settings, payload, "button_again"), again_data(tally.button_job))]]
    if settings is not None and video_settings(settings).video_menu_button:
        rows.append([(text(settings, payload, "button_menu"), MENU_DATA)])
    return Message(message, inline_keyboard(rows))
