"""What the video kind says to its users (English)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.kinds import KindTexts


def subject(payload: Mapping[str, Any]) -> str:
    """How a message names the job: the video of the user's product."""
    return f"your video of “{payload.get('title', 'your product')}”"


def refund_note(price: int) -> str:
    """The sentence saying the credits came back ("" when the job cost nothing)."""
    if not price:
        return ""
    return f" Your {price} credit{'s were' if price != 1 else ' was'} refunded."


def failure(payload: Mapping[str, Any], user_message: str, price: int) -> str:
    """The one message a user gets when a video job fails."""
    return f"Sorry, {subject(payload)} could not be made. {user_message}{refund_note(price)}"


TEXTS = KindTexts(failure=failure)
