"""The bot's named forms of ``Client.submit``, one per job kind (``submit_video``, ...).

:class:`worker.client.Client` and :class:`~worker.client.AsyncClient` take these in, so the
bot's API keeps its names while the framework's code names no kind. Each method only names its
kind and shapes the request from the bot's arguments; the kind validates it
(``JobKind.validate``) and ``Client.submit`` does the rest. A new kind with a named form of
its own adds it here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from worker.client import Client, SubmitResult


class _Submits(Protocol):
    def submit(
        self,
        kind_name: str,
        *,
        user_id: int,
        chat_id: int | None,
        request: Mapping[str, Any],
        count: int = 1,
        idempotency_key: str | None = None,
        cloned_from: int | None = None,
    ) -> SubmitResult: ...


class _HasSync(Protocol):
    @property
    def sync(self) -> Client: ...


class KindSubmits:
    """The named submits of :class:`worker.client.Client`."""

    def submit_video(
        self: _Submits,
        *,
        user_id: int,
        chat_id: int | None = None,
        product: Mapping[str, Any],
        count: int = 1,
        idempotency_key: str | None = None,
        tier: str | None = None,
        language: str | None = None,
    ) -> SubmitResult:
        """Submit ``count`` videos of one product; each is its own job with its own hold.
        ``tier`` names what is sold (its price and models); ``None``: the default tier.
        ``language`` is the user's Telegram ``language_code`` (``ru``, ``uk``, ``en-US``):
        every text about the job is in it (``DEFAULT_LANGUAGE`` when absent or not spoken)."""
        extra = {
            name: value
            for name, value in (("tier", tier), ("language", language))
            if value is not None
        }
        # A product that is not a mapping goes on as it is: the kind refuses it, typed.
        request = {**product, **extra} if extra and isinstance(product, Mapping) else product
        return self.submit(
            "video",
            user_id=user_id,
            chat_id=chat_id,
            request=request,
            count=count,
            idempotency_key=idempotency_key,
        )

    def submit_report(
        self: _Submits,
        user_id: int,
        chat_id: int | None,
        csv_path: str | os.PathLike[str],
        period: str = "30d",
        content_type: str | None = None,
        idempotency_key: str | None = None,
        language: str | None = None,
    ) -> SubmitResult:
        """Submit a sales report of one CSV export (copied into storage first; see jobs.report).
        ``language``: the user's Telegram ``language_code``, as for :meth:`submit_video`."""
        return self.submit(
            "report",
            user_id=user_id,
            chat_id=chat_id,
            request={
                "csv": csv_path,
                "period": period,
                "content_type": content_type,
                "language": language,
            },
            idempotency_key=idempotency_key,
        )


class AsyncKindSubmits:
    """The same, as coroutines, for :class:`worker.client.AsyncClient`."""

    async def submit_video(self: _HasSync, **kwargs: Any) -> SubmitResult:
        client = self.sync
        return await asyncio.to_thread(lambda: client.submit_video(**kwargs))

    async def submit_report(
        self: _HasSync,
        user_id: int,
        chat_id: int | None,
        csv_path: str | os.PathLike[str],
        period: str = "30d",
        content_type: str | None = None,
        idempotency_key: str | None = None,
        language: str | None = None,
    ) -> SubmitResult:
        return await asyncio.to_thread(
            self.sync.submit_report,
            user_id,
            chat_id,
            csv_path,
            period,
            content_type,
            idempotency_key,
            language,
        )
