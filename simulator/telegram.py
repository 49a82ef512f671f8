"""The fake Telegram Bot API: getMe, sendMessage, sendVideo and sendDocument.

Parameters are read the ways Telegram reads them (query string, JSON, urlencoded form, multipart),
failures carry ``error_code`` equal to the HTTP status, and every delivered message is kept so a
test can check what the user actually received, down to the sha256 of an uploaded video.

Uploads are streamed and hashed chunk by chunk; one above ``max_upload_bytes`` (50 MB, the Bot API
limit) is read to the end and refused with 413, so the client sees the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from simulator.state import SimState, current_call, get_state, retry_after_seconds

MAX_TEXT = 4096
MAX_CAPTION = 1024
UPLOAD_CHUNK = 64 * 1024
#: Methods and the field that carries their file.
FILE_FIELDS = {"sendVideo": "video", "sendDocument": "document"}
_INT = re.compile(r"^-?\d+$")


@dataclass
class Upload:
    """A file received in a multipart request: only its size and digest are kept."""

    field: str
    filename: str | None
    content_type: str | None
    size: int
    sha256: str


class TooLarge(Exception):
    """The request carried a file above the upload limit."""


def tg_error(
    request: web.Request, code: int, description: str, parameters: dict[str, Any] | None = None
) -> web.Response:
    current_call(request).code = code
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def tg_ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


async def read_params(
    request: web.Request, max_upload: int
) -> tuple[dict[str, Any], dict[str, Upload]]:
    """All parameters of the request and its uploaded files; raises ``TooLarge``."""
    params: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.method != "POST" or not request.body_exists:
        return params, uploads
    ctype = request.content_type
    if ctype == "multipart/form-data":
        too_large = False
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                await part.release()
                continue
            name = part.name or ""
            if part.filename is None:
                params[name] = await part.text()
                continue
            upload = await _receive_file(part, name, max_upload)
            if upload is None:
                too_large = True
            else:
                uploads[name] = upload
        if too_large:
            raise TooLarge
    elif ctype == "application/json":
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            params.update(body)
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params, uploads


async def _receive_file(part: BodyPartReader, name: str, max_upload: int) -> Upload | None:
    """Hash one uploaded file; ``None`` (after draining it) if it is above the limit."""
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = await part.read_chunk(UPLOAD_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size <= max_upload:
            digest.update(chunk)
    if size > max_upload:
        return None
    ctype = part.headers.get("Content-Type")
    return Upload(name, part.filename, ctype, size, digest.hexdigest())


def _chat_id(value: Any) -> int | str | None:
    """Telegram chat ids: integers, or ``@channelname``; numeric strings become integers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        value = value.strip()
        return int(value) if _INT.match(value) else value
    return None


def _listed(chat_id: int | str, chats: list[int | str]) -> bool:
    return str(chat_id) in {str(c) for c in chats}


def _bot_id(token: str) -> int:
    prefix = token.split(":", 1)[0]
    return int(prefix) if prefix.isdigit() else 1_000_000


def _bot_user(token: str) -> dict[str, Any]:
    return {
        "id": _bot_id(token),
        "is_bot": True,
        "first_name": "Simulator",
        "username": "simulator_bot",
    }


async def bot_method(request: web.Request) -> web.StreamResponse:
    """``POST|GET /bot<token>/<method>``."""
    state = get_state(request)
    cfg = state.config.telegram
    token = request.match_info["token"]
    method = request.match_info["method"]
    call = current_call(request)
    call.key = token
    if cfg.bot_token is not None and token != cfg.bot_token:
        return tg_error(request, 401, "Unauthorized")
    try:
        params, uploads = await read_params(request, cfg.max_upload_bytes)
    except TooLarge:
        return tg_error(request, 413, "Request Entity Too Large")
    call.chat_id = _chat_id(params.get("chat_id"))

    if state.roll(cfg.rate_timeout):
        call.fault = "timeout"
        response = _dispatch(request, state, token, method, params, uploads)
        await asyncio.sleep(cfg.timeout_seconds)
        return response
    if state.roll(cfg.rate_5xx):
        call.fault = "5xx"
        return tg_error(request, 500, "Internal Server Error")
    if state.roll(cfg.rate_429):
        call.fault = "429"
        wait = cfg.retry_after_seconds
        return tg_error(
            request, 429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
        )
    from simulator import telegram_bot  # the bot's own methods (it imports this module)

    if method in telegram_bot.METHODS:
        return await telegram_bot.dispatch(request, state, token, method, params)
    return _dispatch(request, state, token, method, params, uploads)


def _dispatch(
    request: web.Request,
    state: SimState,
    token: str,
    method: str,
    params: dict[str, Any],
    uploads: dict[str, Upload],
) -> web.Response:
    if method == "getMe":
        return tg_ok(
            {
                **_bot_user(token),
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )
    if method not in ("sendMessage", *FILE_FIELDS):
        return tg_error(request, 404, "Not Found")
    return _send(request, state, token, method, params, uploads)


def _send(
    request: web.Request,
    state: SimState,
    token: str,
    method: str,
    params: dict[str, Any],
    uploads: dict[str, Upload],
) -> web.Response:
    cfg = state.config.telegram
    chat_id = _chat_id(params.get("chat_id"))
    if chat_id is None:
        return tg_error(request, 400, "Bad Request: chat_id is empty")
    text: str | None = None
    caption: str | None = None
    upload: Upload | None = None
    file_ref: str | None = None
    if method == "sendMessage":
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return tg_error(request, 400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return tg_error(request, 400, "Bad Request: message is too long")
    else:
        field_name = FILE_FIELDS[method]
        caption = params.get("caption")
        if caption is not None and not isinstance(caption, str):
            caption = str(caption)
        if caption is not None and len(caption) > MAX_CAPTION:
            return tg_error(request, 400, "Bad Request: message caption is too long")
        upload = uploads.get(field_name)
        ref = params.get(field_name)
        if upload is None:
            if not isinstance(ref, str) or not ref.strip():
                return tg_error(
                    request, 400, f"Bad Request: there is no {field_name} in the request"
                )
            if ref.startswith("attach://"):
                attached = uploads.get(ref.removeprefix("attach://"))
                if attached is None:
                    return tg_error(request, 400, "Bad Request: wrong file identifier specified")
                upload = attached
            else:
                file_ref = ref
    markup, bad_markup = _reply_markup(params.get("reply_markup"))
    if bad_markup:
        return tg_error(request, 400, f"Bad Request: {bad_markup}")
    kept: dict[str, Any] | None = None
    if file_ref is not None and not file_ref.startswith(("http://", "https://")):
        # Telegram sends a file it keeps by its file_id; any other string is refused.
        kept = state.telegram_files.get(file_ref)
        if kept is None:
            return tg_error(request, 400, "Bad Request: wrong file identifier/HTTP URL specified")
    if _listed(chat_id, cfg.blocked_chats):
        return tg_error(request, 403, "Forbidden: bot was blocked by the user")
    if _listed(chat_id, cfg.missing_chats):
        return tg_error(request, 400, "Bad Request: chat not found")
    wait = state.windows.admit(
        f"telegram:chat:{chat_id}", cfg.chat_limit, cfg.chat_window_seconds, time.monotonic()
    )
    if wait is not None:
        seconds = retry_after_seconds(wait)
        return tg_error(
            request, 429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
        )

    state.message_seq += 1
    now = time.time()
    message_id = state.message_seq
    chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": "Customer"}
    if isinstance(chat_id, str) or chat_id < 0:
        chat = {"id": chat_id, "type": "supergroup", "title": "Simulated chat"}
    result: dict[str, Any] = {
        "message_id": message_id,
        "from": _bot_user(token),
        "chat": chat,
        "date": int(now),
    }
    if text is not None:
        result["text"] = text
    if markup is not None:
        result["reply_markup"] = markup
    file_id: str | None = None
    if method != "sendMessage":
        if kept is not None:
            media: dict[str, Any] = dict(kept["media"])
        else:
            media = {
                "file_id": f"BAAC{secrets.token_urlsafe(24)}",
                "file_unique_id": f"AgAD{secrets.token_urlsafe(8)}",
            }
            if upload is not None:
                media["file_size"] = upload.size
                if upload.filename:
                    media["file_name"] = upload.filename
        file_id = str(media["file_id"])
        if method == "sendVideo":
            media.update({"width": 720, "height": 1280, "duration": 10, "mime_type": "video/mp4"})
            result["video"] = media
        else:
            media.setdefault("mime_type", (upload and upload.content_type) or "video/mp4")
            result["document"] = media
        if caption:
            result["caption"] = caption
        if kept is None:
            state.telegram_files[file_id] = {
                "media": {k: v for k, v in media.items() if k in ("file_id", "file_unique_id")}
                | {k: media[k] for k in ("file_size", "file_name") if k in media},
                "file_sha256": upload.sha256 if upload else None,
            }
    state.messages.append(
        {
            "seq": message_id,
            "at": now,
            "message_id": message_id,
            "chat_id": chat_id,
            "method": method,
            "text": text,
            "caption": caption,
            "file_size": upload.size if upload else None,
            "file_sha256": upload.sha256 if upload else (kept or {}).get("file_sha256"),
            "file_name": upload.filename if upload else None,
            "file_ref": file_ref,
            "file_id": file_id,
            "reply_markup": markup,
            "params": {k: v for k, v in params.items() if isinstance(v, str | int | float | bool)},
        }
    )
    return tg_ok(result)


def _reply_markup(raw: Any) -> tuple[dict[str, Any] | None, str]:
    """A send's ``reply_markup`` (a JSON string in a form, an object in a JSON body), checked
    as Telegram checks an inline keyboard: ``(markup, "")`` or ``(None, why it is refused)``."""
    if raw is None or raw == "":
        return None, ""
    markup = raw
    if isinstance(raw, str):
        try:
            markup = json.loads(raw)
        except ValueError:
            return None, "can't parse reply keyboard markup JSON object"
    if not isinstance(markup, dict):
        return None, "can't parse reply keyboard markup JSON object"
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup, ""  # another keyboard type: kept as sent
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return None, 'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array'
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text") or "").strip():
                return None, "can't parse inline keyboard button: Text buttons are unallowed"
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                return None, "BUTTON_DATA_INVALID"
    return markup, ""


def routes() -> list[web.RouteDef]:
    return [
        web.post("/bot{token}/{method}", bot_method, name="telegram"),
        web.get("/bot{token}/{method}", bot_method, name="telegram.get"),
    ]
