"""The reference bot's conversation: aiogram 3 handlers over the worker's ``AsyncClient``.

A photo, then the product's name, an optional description (or "Skip"), the count keyboard (the
video kind's allowed counts) and, where several tiers are on sale, the tier keyboard; then one
``submit_video`` whose idempotency key is the update id of the press that ordered it, so a
redelivered update never charges twice. The worker sends the videos, each with "Make another"
(``again:<job_id>``, answered with ``clone`` guarded by the presser's user id) and, for several,
one summary. ``/start`` and "Back to menu" (``menu``) show the balance.

Every callback query is answered; every refusal becomes a sentence in the user's language,
never a traceback. The conversation's state is aiogram's FSM in memory: a bot that runs as
several processes, or must survive restarts mid-order, uses ``RedisStorage`` instead. Updates of
one user are handled one at a time, in order (:class:`OneAtATime`), so two quick presses of a
count button cannot both submit.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
    Update,
    User,
)

from examples.telegram_bot import texts
from examples.telegram_bot.settings import BotSettings
from jobs.video.settings import video_settings
from worker import errors
from worker.client import (
    AsyncClient,
    InsufficientCredits,
    InvalidRequest,
    JobStateConflict,
    RequestRefused,
    UnknownJob,
)
from worker.kinds import get_kind

log = logging.getLogger("examples.telegram_bot")

#: ``worker.errors.Busy`` (the request would wait too long), where this worker has it.
BUSY: type[RequestRefused] | None = getattr(errors, "Busy", None)


class Order(StatesGroup):
    title = State()
    description = State()
    count = State()
    tier = State()


@dataclass(frozen=True)
class Shop:
    """What the handlers sell: the client, the allowed counts and the tiers (name, price)."""

    client: AsyncClient
    settings: BotSettings
    counts: tuple[int, ...]
    tiers: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, client: AsyncClient, settings: BotSettings) -> Shop:
        worker_settings = client.sync.settings
        allowed = get_kind("video").counts
        counts = allowed(worker_settings) if allowed is not None else (1,)
        tiers = tuple((t.name, t.price) for t in video_settings(worker_settings).tiers)
        return cls(client, settings, counts, tiers)


class OneAtATime(BaseMiddleware):
    """Handle one user's updates one after another, in the order they came."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        lock = self._locks.get(user.id)
        if lock is None:
            lock = self._locks[user.id] = asyncio.Lock()
        async with lock:
            return await handler(event, data)


def explain(exc: Exception, code: str | None) -> str:
    """A refusal (or any failure) as one sentence for the user."""
    if isinstance(exc, InsufficientCredits):
        return texts.text(
            code,
            "insufficient",
            needed=texts.counted(code, "credit", exc.needed),
            available=texts.counted(code, "credit", exc.available),
        )
    if isinstance(exc, UnknownJob):  # NotYourJob too: the same words, nothing to learn from
        return texts.text(code, "not_yours")
    if isinstance(exc, JobStateConflict):
        return texts.text(code, "conflict")
    if isinstance(exc, InvalidRequest):
        field = exc.field if f"invalid.{exc.field}" in texts.TEXTS["en"] else "other"
        return texts.text(code, "invalid", what=texts.text(code, f"invalid.{field}"))
    if BUSY is not None and isinstance(exc, BUSY):
        minutes = max(1, round(float(getattr(exc, "eta_seconds", 60.0)) / 60))
        return texts.text(code, "busy", minutes=texts.counted(code, "minute", minutes))
    if not isinstance(exc, RequestRefused):
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    return texts.text(code, "error")


def _keyboard(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=data) for label, data in row]
            for row in rows
        ]
    )


def _lang(event: Message | CallbackQuery) -> str | None:
    return event.from_user.language_code if event.from_user else None


async def _clear_keyboard(callback: CallbackQuery) -> None:
    """Take the keyboard off the message whose button was pressed (once used, it is done)."""
    if isinstance(callback.message, Message) and callback.message.reply_markup is not None:
        try:
            await callback.message.edit_reply_markup(reply_markup=None)
        except Exception as exc:  # the message may be too old to edit; the order goes on
            log.warning("keyboard not removed: %s", type(exc).__name__)


# --- /start and the menu -------------------------------------------------------------------------


async def _start_text(shop: Shop, user: User) -> str:
    code = user.language_code
    welcome = ""
    if shop.settings.welcome_credits:
        before = await shop.client.balance(user.id)
        try:
            after = await shop.client.grant(
                user.id,
                shop.settings.welcome_credits,
                idempotency_key=f"tg-welcome-{user.id}",
                reason="welcome credits",
            )
        except InvalidRequest:  # welcomed already, when the amount was another
            after = before
        if after.available > before.available:
            credits = texts.counted(code, "credit", shop.settings.welcome_credits)
            welcome = texts.text(code, "welcome", credits=credits) + "\n"
    balance = await shop.client.balance(user.id)
    credits = texts.counted(code, "credit", balance.available)
    return welcome + texts.text(code, "start", credits=credits)


async def on_start(message: Message, state: FSMContext, shop: Shop) -> None:
    await state.clear()
    if message.from_user is None:
        return
    try:
        reply = await _start_text(shop, message.from_user)
    except Exception as exc:
        reply = explain(exc, _lang(message))
    await message.answer(reply)


async def on_menu(callback: CallbackQuery, state: FSMContext, shop: Shop) -> None:
    await state.clear()
    try:
        reply = await _start_text(shop, callback.from_user)
    except Exception as exc:
        await callback.answer(explain(exc, _lang(callback)), show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(reply)


# --- the order: photo, name, description, count, tier --------------------------------------------


async def on_photo(message: Message, state: FSMContext) -> None:
    assert message.photo  # the filter
    await state.clear()
    await state.set_state(Order.title)
    await state.update_data(photo_file_id=message.photo[-1].file_id)  # the largest size
    await message.answer(texts.text(_lang(message), "ask_title"))


async def on_title(message: Message, state: FSMContext) -> None:
    code = _lang(message)
    title = (message.text or "").strip()
    if not title:
        await message.answer(texts.text(code, "title_needed"))
        return
    await state.update_data(title=title)
    await state.set_state(Order.description)
    skip = _keyboard([[(texts.text(code, "skip"), "skip")]])
    await message.answer(texts.text(code, "ask_description"), reply_markup=skip)


async def _ask_count(message: Message, code: str | None, state: FSMContext, shop: Shop) -> None:
    await state.set_state(Order.count)
    title = (await state.get_data())["title"]
    counts = _keyboard([[(str(n), f"count:{n}") for n in shop.counts]])
    if len(shop.tiers) > 1:
        ask = texts.text(code, "ask_count_tiers", title=title)
    else:
        price = texts.counted(code, "credit", shop.tiers[0][1])
        ask = texts.text(code, "ask_count", title=title, price=price)
    await message.answer(ask, reply_markup=counts)


async def on_description(message: Message, state: FSMContext, shop: Shop) -> None:
    if not (message.text or "").strip():
        await message.answer(texts.text(_lang(message), "description_needed"))
        return
    await state.update_data(description=(message.text or "").strip())
    await _ask_count(message, _lang(message), state, shop)


async def on_skip(callback: CallbackQuery, state: FSMContext, shop: Shop) -> None:
    await callback.answer()
    await _clear_keyboard(callback)
    if isinstance(callback.message, Message):
        await _ask_count(callback.message, _lang(callback), state, shop)


async def on_count(
    callback: CallbackQuery, state: FSMContext, shop: Shop, event_update: Update
) -> None:
    code = _lang(callback)
    count = _number(callback.data, "count:")
    if count not in shop.counts:
        await callback.answer(texts.text(code, "stale"))
        return
    await state.update_data(count=count)
    if len(shop.tiers) > 1:
        await state.set_state(Order.tier)
        await callback.answer()
        await _clear_keyboard(callback)
        rows = [
            [
                (
                    texts.text(code, "tier", name=name, price=texts.counted(code, "credit", p)),
                    f"tier:{i}",
                )
            ]
            for i, (name, p) in enumerate(shop.tiers)
        ]
        if isinstance(callback.message, Message):
            await callback.message.answer(
                texts.text(code, "ask_tier"), reply_markup=_keyboard(rows)
            )
        return
    await _submit(callback, state, shop, event_update, None)


async def on_tier(
    callback: CallbackQuery, state: FSMContext, shop: Shop, event_update: Update
) -> None:
    index = _number(callback.data, "tier:")
    if index is None or not 0 <= index < len(shop.tiers):
        await callback.answer(texts.text(_lang(callback), "stale"))
        return
    await _submit(callback, state, shop, event_update, shop.tiers[index][0])


def _number(data: str | None, prefix: str) -> int | None:
    tail = (data or "").removeprefix(prefix)
    return int(tail) if tail.isdigit() else None


async def _submit(
    callback: CallbackQuery,
    state: FSMContext,
    shop: Shop,
    update: Update,
    tier: str | None,
) -> None:
    """Order the videos; the update id of the press is the idempotency key."""
    code = _lang(callback)
    order = await state.get_data()
    product = {"title": order["title"], "photo_file_id": order["photo_file_id"]}
    if order.get("description"):
        product["description"] = order["description"]
    try:
        result = await shop.client.submit_video(
            user_id=callback.from_user.id,
            chat_id=callback.message.chat.id if callback.message else callback.from_user.id,
            product=product,
            count=order["count"],
            tier=tier,
            language=code,
            idempotency_key=f"tg-update-{update.update_id}",
        )
    except Exception as exc:  # the order stays: the user may pick another count
        await callback.answer(explain(exc, code), show_alert=True)
        return
    await state.clear()
    await callback.answer(texts.text(code, "on_its_way"))
    await _clear_keyboard(callback)
    n = len(result.job_ids)
    key = "submitted_one" if n == 1 else "submitted_many"
    reply = texts.text(code, key, n=n, title=order["title"])
    reply += texts.eta(code, getattr(result, "eta_seconds", None))
    if isinstance(callback.message, Message):
        await callback.message.answer(reply)


# --- after the videos ----------------------------------------------------------------------------


async def on_again(callback: CallbackQuery, shop: Shop) -> None:
    """ "Make another": a clone of the job, only if it is the presser's own."""
    code = _lang(callback)
    job_id = _number(callback.data, "again:")
    if job_id is None or job_id <= 0:
        await callback.answer(texts.text(code, "stale"))
        return
    try:
        result = await shop.client.clone(
            job_id,
            user_id=callback.from_user.id,
            idempotency_key=f"tg-callback-{callback.id}",
        )
    except Exception as exc:
        await callback.answer(explain(exc, code), show_alert=True)
        return
    await callback.answer(texts.text(code, "on_its_way"))
    reply = texts.text(code, "again") + texts.eta(code, getattr(result, "eta_seconds", None))
    if isinstance(callback.message, Message):
        await callback.message.answer(reply)


async def on_stale(callback: CallbackQuery) -> None:
    """A button of an order that is over, or of another bot version: answered all the same."""
    await callback.answer(texts.text(_lang(callback), "stale"))


async def on_other(message: Message, state: FSMContext) -> None:
    key = {
        Order.title.state: "title_needed",
        Order.description.state: "description_needed",
    }.get(await state.get_state() or "", "photo_first")
    await message.answer(texts.text(_lang(message), key))


def router() -> Router:
    r = Router(name="reference-bot")
    r.message.register(on_start, CommandStart())
    r.message.register(on_photo, F.photo)
    r.message.register(on_title, Order.title, F.text)
    r.message.register(on_description, Order.description, F.text)
    r.message.register(on_other)
    r.callback_query.register(on_again, F.data.startswith("again:"))
    r.callback_query.register(on_menu, F.data == "menu")
    r.callback_query.register(on_skip, Order.description, F.data == "skip")
    r.callback_query.register(on_count, Order.count, F.data.startswith("count:"))
    r.callback_query.register(on_tier, Order.tier, F.data.startswith("tier:"))
    r.callback_query.register(on_stale)
    return r


def build_dispatcher(client: AsyncClient, settings: BotSettings) -> Dispatcher:
    dp = Dispatcher(storage=MemoryStorage())
    dp.update.outer_middleware(OneAtATime())
    dp["shop"] = Shop.of(client, settings)
    dp.include_router(router())
    return dp


def make_bot(settings: BotSettings) -> Bot:
    """The aiogram ``Bot``, pointed at ``TELEGRAM_API_URL`` when it is set (the simulator)."""
    if settings.api_url is None:
        return Bot(settings.token)
    api = TelegramAPIServer.from_base(settings.api_url)
    return Bot(settings.token, session=AiohttpSession(api=api))


async def run(settings: BotSettings, client: AsyncClient, *, handle_signals: bool = True) -> None:
    """Long-poll Telegram until stopped (SIGINT/SIGTERM with ``handle_signals``)."""
    bot = make_bot(settings)
    dispatcher = build_dispatcher(client, settings)
    await dispatcher.start_polling(
        bot, polling_timeout=settings.poll_seconds, handle_signals=handle_signals
    )
