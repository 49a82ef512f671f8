"""What the report kind says to its users (English)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.kinds import KindTexts


def subject(payload: Mapping[str, Any]) -> str:
    """How a message names the job: the report of the user's file."""
    return f"your sales report for “{payload.get('file_name', 'your file')}”"


def refund_note(price: int) -> str:
    """The sentence saying the credits came back ("" when the report cost nothing)."""
    if not price:
        return ""
    return f" Your {price} credit{'s were' if price != 1 else ' was'} refunded."


def failure(payload: Mapping[str, Any], user_message: str, price: int) -> str:
    """The one message a user gets when a report fails."""
    return f"Sorry, {subject(payload)} could not be made. {user_message}{refund_note(price)}"


TEXTS = KindTexts(failure=failure)
