"""The Bot API as a bot itself sees it: updates in, callback answers and keyboard edits out.

The simulator's Telegram is one bot. A bot long-polls ``getUpdates`` (``offset`` confirms,
``limit`` 1–100, ``timeout`` really waits and returns as soon as an update arrives, update ids
are unique and increasing, a second ``getUpdates`` ends the first with 409 "Conflict", as
Telegram does when two copies of a bot poll). A test, or a person at a shell, plays the user
through the admin API:

- ``POST /_sim/telegram/updates/message`` ``{"user_id", "text", "chat_id"?, "language_code"?,
  "first_name"?, "username"?}``: the user sends a text (a leading ``/command`` carries its
  ``bot_command`` entity);
- ``POST /_sim/telegram/updates/photo?user_id=&chat_id=&language_code=&caption=`` with the
  image's bytes as the body: the user sends a photo. The bytes are kept in the simulator's
  Telegram file store (``simulator.telegram_files``, so ``getFile`` and the file download find
  them) and ``message.photo`` is an array of PhotoSize, largest last: smaller JPEG copies (90,
  320 and 800 px on the long side, those smaller than the image) and the bytes as sent;
- ``POST /_sim/telegram/updates/callback_query`` ``{"user_id", "message_id", "data",
  "chat_id"?, "language_code"?}``: the user presses a button of a message the bot sent to that
  chat. ``data`` need not be one of the message's buttons (a modified client can send any), but
  it is 1 to 64 bytes: Telegram never delivers more;
- ``GET /_sim/telegram/chats/<chat_id>``: the chat's transcript: every message the bot (or the
  worker) sent there in order, with its text or caption, media kind, current ``reply_markup`` and
  edits; the updates the user sent; each button press and whether and how it was answered;
- ``GET /_sim/telegram/updates``: the updates not yet confirmed by an ``offset``.

The bot's methods: ``getUpdates``, ``answerCallbackQuery`` (each query once; one unanswered for
15 s, or answered already, is "query is too old") and ``editMessageReplyMarkup`` (an inline
keyboard or none; "message is not modified" when nothing changes). ``sendMessage`` keeps its
``reply_markup`` (``simulator.telegram``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from simulator.state import SimState, get_state
from simulator.telegram import _bot_user, _reply_markup, tg_error, tg_ok

#: The bot's methods served here (the rest are ``simulator.telegram``'s).
METHODS = frozenset({"getUpdates", "answerCallbackQuery", "editMessageReplyMarkup"})
#: ``callback_data`` Telegram delivers: 1 to 64 bytes.
MAX_CALLBACK_DATA = 64
#: A callback query not answered within this long can no longer be answered.
CALLBACK_ANSWER_SECONDS = 15.0
#: ``answerCallbackQuery``'s text: 0 to 200 characters.
MAX_ANSWER_TEXT = 200
#: ``getUpdates``: at most this many updates per answer, and this long a wait.
MAX_LIMIT = 100
MAX_POLL_SECONDS = 50
#: The long sides of the smaller copies of a photo, as Telegram makes them.
PHOTO_SIDES = (90, 320, 800)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)


class BadInjection(ValueError):
    """An admin request that could not be a user's update (the message says why)."""


@dataclass
class CallbackQuery:
    """One button press and its answer."""

    id: str
    user_id: int
    chat_id: int | str
    message_id: int
    data: str
    at: float
    answered: bool = False
    answered_at: float | None = None
    answer_text: str | None = None
    show_alert: bool = False


@dataclass
class BotChannel:
    """The bot's side of the simulator's Telegram: pending updates, presses, edits.

    Reset lazily with the simulator (``SimState.epoch``); update ids keep increasing across
    resets, so a bot still holding an old offset never confirms a new update by mistake.
    """

    epoch: int = -1
    next_update_id: int = 700_000_001
    pending: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    queries: dict[str, CallbackQuery] = field(default_factory=dict)
    #: The update types the bot asked for (``allowed_updates``); ``None``: every type.
    allowed: frozenset[str] | None = None
    #: Bumped by each ``getUpdates``: a poll that sees it change was replaced (409).
    poll_generation: int = 0
    #: The token the bot last called with: the ``from`` of its messages in callback queries.
    token: str | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def sync(self, epoch: int) -> BotChannel:
        if epoch != self.epoch:
            self.epoch = epoch
            self.pending, self.received, self.queries = [], [], {}
            self.allowed = None
            self.notify()
        return self

    def notify(self) -> None:
        """Wake every waiting ``getUpdates``."""
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def push(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new update of ``kind`` (``message``, ``callback_query``) with the next id."""
        update = {"update_id": self.next_update_id, kind: body}
        self.next_update_id += 1
        self.received.append(update)
        if self.allowed is None or kind in self.allowed:
            self.pending.append(update)
            self.notify()
        return update

    def confirm(self, offset: int) -> None:
        if offset < 0:
            self.pending = self.pending[offset:]
        elif offset > 0:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]


BOT_KEY = web.AppKey("telegram_bot", BotChannel)


def _channel(request: web.Request) -> tuple[SimState, BotChannel]:
    state = get_state(request)
    return state, request.app[BOT_KEY].sync(state.epoch)


# --- the bot's methods ---------------------------------------------------------------------------


async def dispatch(
    request: web.Request, state: SimState, token: str, method: str, params: dict[str, Any]
) -> web.Response:
    """Answer one of :data:`METHODS` (called by ``simulator.telegram.bot_method``)."""
    channel = request.app[BOT_KEY].sync(state.epoch)
    channel.token = token
    if method == "getUpdates":
        return await _get_updates(request, channel, params)
    if method == "answerCallbackQuery":
        return _answer_callback_query(request, channel, params)
    return _edit_reply_markup(request, state, token, params)


def _int(value: Any, default: int) -> int | None:
    """An integer parameter (a form sends strings); ``None`` when it is not one."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _allowed_updates(raw: Any) -> frozenset[str] | str | None:
    """``allowed_updates`` (a JSON array, or a list in a JSON body): the set, ``None`` for
    every type, or the 400 text."""
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return "Bad Request: can't parse allowed updates"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "Bad Request: can't parse allowed updates"
    return frozenset(value) or None


async def _get_updates(
    request: web.Request, channel: BotChannel, params: dict[str, Any]
) -> web.Response:
    offset = _int(params.get("offset"), 0)
    limit = _int(params.get("limit"), MAX_LIMIT)
    timeout = _int(params.get("timeout"), 0)
    if offset is None or limit is None or timeout is None:
        return tg_error(request, 400, "Bad Request: wrong parameter value")
    if "allowed_updates" in params and params["allowed_updates"] not in (None, ""):
        allowed = _allowed_updates(params["allowed_updates"])
        if isinstance(allowed, str):
            return tg_error(request, 400, allowed)
        channel.allowed = allowed
    limit = min(max(limit, 1), MAX_LIMIT)
    channel.confirm(offset)
    channel.poll_generation += 1
    generation = channel.poll_generation
    channel.notify()  # an earlier poll still waiting now ends with 409
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(timeout, 0), MAX_POLL_SECONDS)
    while True:
        if channel.poll_generation != generation:
            return tg_error(request, 409, CONFLICT)
        batch = channel.pending[:limit]
        remaining = deadline - loop.time()
        if batch or remaining <= 0:
            return tg_ok(batch)
        await channel.wait(remaining)


def _answer_callback_query(
    request: web.Request, channel: BotChannel, params: dict[str, Any]
) -> web.Response:
    query_id = params.get("callback_query_id")
    if not isinstance(query_id, str | int) or not str(query_id):
        return tg_error(request, 400, "Bad Request: query_id is empty")
    query = channel.queries.get(str(query_id))
    now = time.time()
    if query is None or query.answered or now - query.at > CALLBACK_ANSWER_SECONDS:
        return tg_error(request, 400, QUERY_TOO_OLD)
    text = params.get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    if text is not None and len(text) > MAX_ANSWER_TEXT:
        return tg_error(request, 400, "Bad Request: MESSAGE_TOO_LONG")
    query.answered, query.answered_at = True, now
    query.answer_text = text or None
    query.show_alert = _flag(params.get("show_alert"))
    return tg_ok(True)


def _find_message(state: SimState, chat_id: Any, message_id: Any) -> dict[str, Any] | None:
    """The message the bot sent to ``chat_id`` as ``message_id`` (its record, to edit)."""
    wanted = (str(chat_id), str(message_id))
    found: dict[str, Any]
    for found in reversed(state.messages):
        if (str(found["chat_id"]), str(found["message_id"])) == wanted:
            return found
    return None


def _edit_reply_markup(
    request: web.Request, state: SimState, token: str, params: dict[str, Any]
) -> web.Response:
    if params.get("inline_message_id"):
        return tg_error(request, 400, "Bad Request: message to edit not found")
    if params.get("chat_id") in (None, ""):
        return tg_error(request, 400, "Bad Request: chat_id is empty")
    if params.get("message_id") in (None, ""):
        return tg_error(request, 400, "Bad Request: message identifier is not specified")
    message = _find_message(state, params["chat_id"], params["message_id"])
    if message is None:
        return tg_error(request, 400, "Bad Request: message to edit not found")
    markup, bad = _reply_markup(params.get("reply_markup"))
    if bad:
        return tg_error(request, 400, f"Bad Request: {bad}")
    if markup is not None and "inline_keyboard" not in markup:
        return tg_error(request, 400, "Bad Request: inline keyboard expected")
    if markup is not None and not markup["inline_keyboard"]:
        markup = None  # an empty inline keyboard removes it, as Telegram treats it
    if markup == message.get("reply_markup"):
        return tg_error(request, 400, NOT_MODIFIED)
    message["reply_markup"] = markup
    message["edits"] = int(message.get("edits") or 0) + 1
    message["edited_at"] = time.time()
    return tg_ok(message_object(state, message, token))


def message_object(state: SimState, record: dict[str, Any], token: str | None) -> dict[str, Any]:
    """A recorded sent message as the Bot API shows it (in a callback query, after an edit)."""
    chat_id = record["chat_id"]
    chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": "Customer"}
    if isinstance(chat_id, str) or chat_id < 0:
        chat = {"id": chat_id, "type": "supergroup", "title": "Simulated chat"}
    message: dict[str, Any] = {
        "message_id": record["message_id"],
        "from": _bot_user(token or state.config.telegram.bot_token or ""),
        "chat": chat,
        "date": int(record["at"]),
    }
    if record.get("text") is not None:
        message["text"] = record["text"]
    if record.get("caption"):
        message["caption"] = record["caption"]
    file_id = record.get("file_id")
    if file_id:
        kept = state.telegram_files.get(file_id, {}).get("media", {})
        media = {
            "file_id": file_id,
            "file_unique_id": kept.get("file_unique_id") or f"AgAD{file_id[-8:]}",
        }
        if record["method"] == "sendVideo":
            message["video"] = media | {"width": 720, "height": 1280, "duration": 10}
        else:
            message["document"] = media
    markup = record.get("reply_markup")
    if markup is not None and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    if record.get("edited_at"):
        message["edit_date"] = int(record["edited_at"])
    return message


# --- the user's side: injected updates -----------------------------------------------------------


def _user(body: dict[str, Any]) -> dict[str, Any]:
    user_id = body.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise BadInjection("user_id must be a positive integer")
    user: dict[str, Any] = {
        "id": user_id,
        "is_bot": False,
        "first_name": str(body.get("first_name") or "Customer"),
    }
    for name in ("username", "language_code"):
        if body.get(name):
            user[name] = str(body[name])
    return user


def _chat(body: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    chat_id = body.get("chat_id", user["id"])
    if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id == 0:
        raise BadInjection("chat_id must be a non-zero integer")
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": user["first_name"]}
    return {"id": chat_id, "type": "supergroup", "title": "Simulated chat"}


def _user_message(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    """The frame of a message the user sends: a new message id in the chat, who, where, when."""
    user = _user(body)
    chat = _chat(body, user)
    state.message_seq += 1  # one numbering for both sides, as in a Telegram chat
    return {"message_id": state.message_seq, "from": user, "chat": chat, "date": int(time.time())}


def inject_text(state: SimState, channel: BotChannel, body: dict[str, Any]) -> dict[str, Any]:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadInjection("text must be a non-empty string")
    message = _user_message(state, body) | {"text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return channel.push("message", message)


def _photo_copies(data: bytes) -> list[tuple[bytes, int, int]]:
    """The photo's sizes, smallest first: JPEG copies for the sides below the image's, then the
    bytes as sent. Bytes that are no image are kept as one size of 0×0 (a worker must refuse
    them)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            copies: list[tuple[bytes, int, int]] = []
            for side in PHOTO_SIDES:
                if max(width, height) <= side:
                    break
                small = image.convert("RGB")
                small.thumbnail((side, side))
                out = io.BytesIO()
                small.save(out, "JPEG", quality=85)
                copies.append((out.getvalue(), small.width, small.height))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return [(data, 0, 0)]
    return [*copies, (data, width, height)]


def inject_photo(
    state: SimState, channel: BotChannel, data: bytes, body: dict[str, Any]
) -> dict[str, Any]:
    """The user sends ``data`` as a photo; each size is a file of the Telegram file store."""
    from simulator import telegram_files  # the store getFile and the file download read

    if not data:
        raise BadInjection("the request body must be the photo's bytes")
    message = _user_message(state, body)
    sizes = []
    for content, width, height in _photo_copies(data):
        stored = telegram_files.add_file(state, content, kind="photo")
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(content),
                "width": width,
                "height": height,
            }
        )
    message["photo"] = sizes
    caption = body.get("caption")
    if caption:
        message["caption"] = str(caption)
    return channel.push("message", message)


def inject_callback_query(
    state: SimState, channel: BotChannel, body: dict[str, Any]
) -> dict[str, Any]:
    user = _user(body)
    chat = _chat(body, user)
    data = body.get("data")
    if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
        raise BadInjection(
            f"data must be 1 to {MAX_CALLBACK_DATA} bytes: Telegram delivers no other callback_data"
        )
    record = _find_message(state, chat["id"], body.get("message_id"))
    if record is None:
        raise BadInjection(f"the bot sent no message {body.get('message_id')} to chat {chat['id']}")
    query_id = str(secrets.randbelow(9 * 10**18) + 10**18)
    channel.queries[query_id] = CallbackQuery(
        query_id, user["id"], chat["id"], record["message_id"], data, time.time()
    )
    instance = hashlib.sha256(f"{chat['id']}".encode()).hexdigest()[:16]
    query = {
        "id": query_id,
        "from": user,
        "message": message_object(state, record, channel.token),
        "chat_instance": str(int(instance, 16)),
        "data": data,
    }
    return channel.push("callback_query", query)


def transcript(state: SimState, channel: BotChannel, chat_id: str) -> dict[str, Any]:
    """What a chat shows: the bot's messages (current keyboards, edits), the user's updates,
    and each button press with its answer."""
    sent = []
    for record in state.messages:
        if str(record["chat_id"]) != chat_id:
            continue
        method = record["method"]
        kind = {"sendMessage": "text", "sendVideo": "video", "sendDocument": "document"}
        sent.append(
            {
                "message_id": record["message_id"],
                "at": record["at"],
                "method": method,
                "kind": kind.get(method, method.removeprefix("send").lower()),
                "text": record.get("text"),
                "caption": record.get("caption"),
                "file_id": record.get("file_id"),
                "reply_markup": record.get("reply_markup"),
                "edits": int(record.get("edits") or 0),
            }
        )
    received = [
        u
        for u in channel.received
        if str((u.get("message") or u.get("callback_query", {}).get("message", {}))["chat"]["id"])
        == chat_id
    ]
    queries = [asdict(q) for q in channel.queries.values() if str(q.chat_id) == chat_id]
    return {"chat_id": chat_id, "sent": sent, "received": received, "callback_queries": queries}


# --- admin handlers ------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadInjection("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadInjection("the body must be a JSON object")
    return body


def _query_body(request: web.Request) -> dict[str, Any]:
    """A photo's parameters from the query string (its body is the image)."""
    body: dict[str, Any] = dict(request.query)
    for name in ("user_id", "chat_id"):
        if name in body:
            try:
                body[name] = int(body[name])
            except ValueError:
                raise BadInjection(f"{name} must be an integer") from None
    return body


async def post_message(request: web.Request) -> web.Response:
    """``POST /_sim/telegram/updates/message`` → the update."""
    state, channel = _channel(request)
    try:
        return web.json_response(inject_text(state, channel, await _json_body(request)))
    except BadInjection as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def post_photo(request: web.Request) -> web.Response:
    """``POST /_sim/telegram/updates/photo?user_id=...`` with the image as the body → the update."""
    state, channel = _channel(request)
    try:
        body = _query_body(request)
        return web.json_response(inject_photo(state, channel, await request.read(), body))
    except BadInjection as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def post_callback_query(request: web.Request) -> web.Response:
    """``POST /_sim/telegram/updates/callback_query`` → the update."""
    state, channel = _channel(request)
    try:
        return web.json_response(inject_callback_query(state, channel, await _json_body(request)))
    except BadInjection as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def get_pending(request: web.Request) -> web.Response:
    """``GET /_sim/telegram/updates`` → the updates the bot has not confirmed yet."""
    _, channel = _channel(request)
    return web.json_response(channel.pending)


async def get_chat(request: web.Request) -> web.Response:
    """``GET /_sim/telegram/chats/<chat_id>`` → the chat's transcript (see :func:`transcript`)."""
    state, channel = _channel(request)
    return web.json_response(transcript(state, channel, request.match_info["chat_id"]))


def routes() -> list[web.RouteDef]:
    return [
        web.post("/_sim/telegram/updates/message", post_message, name="admin.tg_message"),
        web.post("/_sim/telegram/updates/photo", post_photo, name="admin.tg_photo"),
        web.post(
            "/_sim/telegram/updates/callback_query",
            post_callback_query,
            name="admin.tg_callback_query",
        ),
        web.get("/_sim/telegram/updates", get_pending, name="admin.tg_updates"),
        web.get("/_sim/telegram/chats/{chat_id}", get_chat, name="admin.tg_chat"),
    ]
