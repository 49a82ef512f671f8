"""Telegram Bot API notifications: texts and files sent to a chat.

This module is framework: it knows chats, texts and files, never what a job makes or who the
job is for; a kind says how its files are sent (:class:`Media`). Every failure
is classified here, once, into a :class:`~worker.errors.ErrorClass`. A user who blocked the bot
(403) or a chat that does not exist (400) is permanent *for the notification only*
(``permanent_for_notification=True``): the job's outcome and the ledger do not change because a
message could not be delivered.

The bot token is part of every request URL (``/bot<token>/<method>``), and httpx puts the URL
into its exceptions and its INFO log line. So no httpx exception text is ever reused here: the
errors are built from the method name alone, and raised ``from None`` so a traceback does not
print the original either. (httpx's own ``HTTP Request: POST https://.../bot<token>/...`` log line
must go through :class:`worker.redaction.RedactingFilter`, which ``install_logging`` sets on
every handler; the token is also registered as a secret when this notifier is built.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from worker import http as provider_http
from worker.errors import ConfigError, ErrorClass, ProviderError
from worker.redaction import register_secrets

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = [
    "DOCUMENT",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_CHARS",
    "MAX_DOWNLOAD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_UPLOAD_BYTES",
    "Media",
    "Sent",
    "TelegramFile",
    "TelegramNotifier",
    "inline_keyboard",
]

log = logging.getLogger(__name__)

PROVIDER = "telegram"
#: Bot API limits: message text, media caption, and a multipart upload through the cloud API.
MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: The largest file a bot may download (``getFile``).
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
_ELLIPSIS = "\u2026"
#: An inline button's ``callback_data``: 1 to 64 bytes.
MAX_CALLBACK_DATA_BYTES = 64


@dataclass(frozen=True)
class Media:
    """How the Bot API takes one type of file: the ``send...`` method, the multipart field
    holding the file, and the MIME type the upload declares."""

    method: str
    field: str
    mime: str


#: Any file, shown as a document.
DOCUMENT = Media("sendDocument", "document", "application/octet-stream")


@dataclass(frozen=True)
class Sent:
    """A message sent: its id and, for a file, the ``file_id`` Telegram keeps it under (a later
    send of the same file names it instead of uploading it again; ``None`` for a text)."""

    message_id: int
    file_id: str | None = None


@dataclass(frozen=True)
class TelegramFile:
    """What ``getFile`` says of a file a user sent: its ``file_path`` is where it is downloaded
    from (:meth:`TelegramNotifier.download_file`; the download URL carries the bot token)."""

    file_id: str
    file_unique_id: str
    file_size: int | None
    file_path: str


def inline_keyboard(rows: Sequence[Sequence[tuple[str, str]]]) -> dict[str, Any]:
    """A ``reply_markup`` of inline buttons, rows of ``(text, callback_data)``. The Bot API
    refuses ``callback_data`` outside 1..64 bytes (UTF-8), so that is a ``ValueError`` here."""
    keyboard: list[list[dict[str, str]]] = []
    for row in rows:
        buttons = []
        for text, data in row:
            size = len(data.encode("utf-8"))
            if not text.strip() or not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                raise ValueError(
                    f"an inline button needs a text and 1..{MAX_CALLBACK_DATA_BYTES} bytes of "
                    f"callback_data (got {size})"
                )
            buttons.append({"text": text, "callback_data": data})
        keyboard.append(buttons)
    return {"inline_keyboard": keyboard}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis at the end if it was longer.

    Telegram counts UTF-16 code units, so an emoji may count twice; counting the same way keeps
    a long text from being refused with a 400 that would look like a permanent failure.
    """
    if _utf16_len(text) <= limit:
        return text
    cut = text[:limit]
    while cut and _utf16_len(cut) > limit - 1:
        cut = cut[:-1]
    return cut.rstrip() + _ELLIPSIS


class TelegramNotifier:
    """Sends notifications through the Bot API, one HTTP exchange per call and no retries."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float,
        http: httpx.Client | None = None,
    ) -> None:
        if not token:
            raise ValueError("a Telegram bot token is required")
        register_secrets([token])
        self.api_url = api_url.rstrip("/")
        self._token = token
        # Uploads can be slow; the write timeout is per chunk, so 50 MB on a slow link still works.
        self.timeout = provider_http.timeout(timeout)
        self._owns_http = http is None
        self._http = http or provider_http.client(timeout)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http: httpx.Client | None = None
    ) -> TelegramNotifier:
        """A notifier configured from ``TELEGRAM_*`` settings."""
        if not settings.telegram_bot_token.get_secret_value():
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set; notifications need a bot token")
        return cls(
            settings.telegram_api_url,
            settings.telegram_bot_token.get_secret_value(),
            timeout=settings.telegram_timeout,
            http=http,
        )

    def __repr__(self) -> str:
        return f"TelegramNotifier(api_url={self.api_url!r})"

    def close(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> TelegramNotifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- public calls ----------------------------------------------------------------------

    def get_me(self) -> dict[str, Any]:
        """The bot's own user object: the cheapest check that the token works (``doctor``)."""
        result = self._call("getMe")
        if not isinstance(result, dict):
            raise self._malformed("getMe", "result is not an object")
        return result

    def send_message(
        self, chat_id: int, text: str, *, reply_markup: Mapping[str, Any] | None = None
    ) -> int:
        """Send a text (cut to 4096 characters with an ellipsis) and return its message id.

        No ``parse_mode`` is sent: Telegram shows the text as typed, so user text in it needs
        no escaping (``worker.texts``)."""
        if not text.strip():
            raise ValueError("a Telegram message must not be empty")
        data: dict[str, Any] = {"chat_id": chat_id, "text": fit(text, MAX_TEXT_CHARS)}
        if reply_markup is not None:
            data["reply_markup"] = dict(reply_markup)
        return self._message_id("sendMessage", self._call("sendMessage", data=data))

    def send_file(
        self,
        chat_id: int,
        path: Path,
        media: Media = DOCUMENT,
        *,
        caption: str,
        link: str | None = None,
    ) -> int:
        """Upload a file (streamed from disk) as ``media`` and return the message id.

        Above 50 MB the Bot API refuses uploads, so the user gets the caption and ``link`` as a
        text instead. Without a link there is nothing to send: that raises USER_ERROR with
        ``permanent_for_notification`` (no retry can make the file smaller, and the job's
        outcome must not change because of it), before any request is made.
        """
        return self.deliver_file(chat_id, media, path=path, caption=caption, link=link).message_id

    def deliver_file(
        self,
        chat_id: int,
        media: Media = DOCUMENT,
        *,
        path: Path | None = None,
        file_id: str | None = None,
        caption: str,
        link: str | None = None,
        reply_markup: Mapping[str, Any] | None = None,
    ) -> Sent:
        """Send a file as ``media`` with its caption and buttons; return the message id and the
        ``file_id`` Telegram keeps the file under.

        With ``file_id`` (from an earlier send) nothing is uploaded: Telegram sends the file it
        keeps, so a resend needs no local copy. Otherwise ``path`` is uploaded as in
        :meth:`send_file` (above 50 MB, the caption and ``link`` as a text: no ``file_id``).
        No ``parse_mode`` is sent: the caption is plain text.
        """
        markup = dict(reply_markup) if reply_markup is not None else None
        if file_id:
            data: dict[str, Any] = {"chat_id": chat_id, media.field: file_id}
            if caption.strip():
                data["caption"] = fit(caption, MAX_CAPTION_CHARS)
            if markup is not None:
                data["reply_markup"] = markup
            result = self._call(media.method, data=data)
            return Sent(self._message_id(media.method, result), _file_id(result, media) or file_id)
        if path is None:
            raise ValueError("deliver_file needs a path or a file_id")
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            message_id = self._send_link(media.method, chat_id, path, caption, link, markup)
            return Sent(message_id)
        return self._upload(media, chat_id, path, caption, markup)

    def send_document(
        self, chat_id: int, path: Path, *, caption: str, link: str | None = None
    ) -> int:
        """Upload a file as a document (see :meth:`send_file`)."""
        return self.send_file(chat_id, path, DOCUMENT, caption=caption, link=link)

    def get_file(self, file_id: str) -> TelegramFile:
        """``getFile``: where a file a user sent can be downloaded. Telegram refuses a file
        above 20 MB (400 "file is too big") and an unknown ``file_id`` (400): USER_ERROR."""
        try:
            result = self._call("getFile", data={"file_id": file_id})
        except ProviderError as err:
            if err.error_class is ErrorClass.USER_ERROR and "too big" in err.message.lower():
                detail = err.message.removeprefix("getFile: ")
                raise self._error(
                    ErrorClass.USER_ERROR, "getFile", detail, err.status, "file_too_large"
                ) from None
            raise
        path = result.get("file_path") if isinstance(result, dict) else None
        if not isinstance(path, str) or not path or ".." in path or path.startswith("/"):
            raise self._malformed("getFile", "result.file_path is missing or not a relative path")
        size = result.get("file_size")
        return TelegramFile(
            file_id=str(result.get("file_id") or file_id),
            file_unique_id=str(result.get("file_unique_id") or ""),
            file_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            file_path=path,
        )

    def download_file(self, file_id: str, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """The bytes of a file a user sent (``getFile``, then the download), at most
        ``max_bytes``: a larger one is USER_ERROR (``code="file_too_large"``), refused from its
        ``file_size`` before the download or cut off while streaming. The download URL carries
        the bot token: it is never logged, stored or put into an error."""
        found = self.get_file(file_id)
        if found.file_size is not None and found.file_size > max_bytes:
            raise self._too_large(found.file_size, max_bytes)
        url = f"{self.api_url}/file/bot{self._token}/{found.file_path}"
        chunks: list[bytes] = []
        size = 0
        try:
            with self._http.stream("GET", url, timeout=self.timeout) as response:
                status = response.status_code
                if status != 200:
                    cls = ErrorClass.TEMPORARY if status >= 500 else ErrorClass.USER_ERROR
                    raise self._error(cls, "file download", f"HTTP {status}", status, status)
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise self._too_large(size, max_bytes)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            kind = type(exc).__name__
            raise self._error(ErrorClass.TEMPORARY, "file download", f"failed ({kind})") from None
        return b"".join(chunks)

    # -- helpers ---------------------------------------------------------------------------

    def _too_large(self, size: int, limit: int) -> ProviderError:
        return self._error(
            ErrorClass.USER_ERROR,
            "file download",
            f"the file is over {size:,} bytes, above the {limit:,}-byte download limit",
            code="file_too_large",
        )

    def _send_link(
        self,
        method: str,
        chat_id: int,
        path: Path,
        caption: str,
        link: str | None,
        reply_markup: Mapping[str, Any] | None = None,
    ) -> int:
        if not link:
            raise ProviderError(
                ErrorClass.USER_ERROR,
                f"{method}: {path.name} is {path.stat().st_size} bytes, above the Bot API's "
                f"{MAX_UPLOAD_BYTES}-byte upload limit, and no link was given",
                provider=PROVIDER,
                code="file_too_large",
                permanent_for_notification=True,
            )
        room = MAX_TEXT_CHARS - _utf16_len(link) - 1
        text = f"{fit(caption, room)}\n{link}" if caption.strip() and room > 1 else link
        return self.send_message(chat_id, text, reply_markup=reply_markup)

    def _upload(
        self,
        media: Media,
        chat_id: int,
        path: Path,
        caption: str,
        reply_markup: Mapping[str, Any] | None,
    ) -> Sent:
        data: dict[str, Any] = {"chat_id": str(chat_id)}
        if caption.strip():
            data["caption"] = fit(caption, MAX_CAPTION_CHARS)
        if reply_markup is not None:  # a multipart field is a string: the markup as JSON
            data["reply_markup"] = json.dumps(reply_markup, ensure_ascii=False)
        # httpx streams an open file in chunks; the file is never read into memory whole.
        with path.open("rb") as stream:
            result = self._call(
                media.method, data=data, files={media.field: (path.name, stream, media.mime)}
            )
        return Sent(self._message_id(media.method, result), _file_id(result, media))

    def _message_id(self, method: str, result: Any) -> int:
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise self._malformed(method, "result.message_id is missing")
        return message_id

    def _call(
        self,
        method: str,
        *,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> Any:
        """One Bot API exchange; returns ``result`` or raises a classified error."""
        url = f"{self.api_url}/bot{self._token}/{method}"
        try:
            if files is not None:
                response = self._http.post(url, data=data, files=files, timeout=self.timeout)
            else:
                response = self._http.post(url, json=data or {}, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            kind, unknown = type(exc).__name__, provider_http.outcome_unknown(exc)
            raise self._error(
                ErrorClass.TEMPORARY, method, f"timed out ({kind})", outcome_unknown=unknown
            ) from None
        except httpx.HTTPError as exc:
            kind, unknown = type(exc).__name__, provider_http.outcome_unknown(exc)
            raise self._error(
                ErrorClass.TEMPORARY, method, f"request failed ({kind})", outcome_unknown=unknown
            ) from None

        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            detail = "non-JSON body" if body is None else "body without a boolean 'ok'"
            raise self._error(ErrorClass.TEMPORARY, method, f"{detail} (HTTP {status})", status)
        if body["ok"]:
            if not 200 <= status < 300:
                log.debug("telegram %s: ok=true with HTTP %s", method, status)
            if "result" not in body:
                raise self._malformed(method, "result is missing", status)
            return body["result"]

        code = body.get("error_code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = status
        description = body.get("description")
        description = description.strip() if isinstance(description, str) else ""
        params = body.get("parameters")
        retry_after = params.get("retry_after") if isinstance(params, dict) else None
        detail = f"error {code}: {description or 'no description'}"
        if code == 429:
            wait = provider_http.retry_after(response.headers, body_seconds=retry_after)
            raise self._error(ErrorClass.RATE_LIMIT, method, detail, status, code, retry_after=wait)
        if code in (400, 403, 413):
            # Blocked by the user, chat not found, kicked, deactivated, file too big: no retry
            # will deliver this notification.
            raise self._error(ErrorClass.USER_ERROR, method, detail, status, code, permanent=True)
        if code in (401, 404):
            raise self._error(
                ErrorClass.AUTH, method, f"{detail} (the bot token is wrong)", status, code
            )
        if code >= 500 or code in (408, 409):
            raise self._error(ErrorClass.TEMPORARY, method, detail, status, code)
        raise self._error(ErrorClass.INTERNAL, method, detail, status, code)

    def _error(
        self,
        cls: ErrorClass,
        method: str,
        detail: str,
        status: int | None = None,
        code: int | str | None = None,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        outcome_unknown: bool = False,
    ) -> ProviderError:
        # The message is built from the method name and Telegram's description only; the
        # token-bearing URL never enters it. Belt and braces: mask the token anyway.
        text = f"{method}: {detail}".replace(self._token, "[REDACTED]")
        return ProviderError(
            cls,
            text,
            provider=PROVIDER,
            status=status,
            code=str(code) if code is not None else None,
            retry_after=retry_after,
            permanent_for_notification=permanent,
            outcome_unknown=outcome_unknown,
        )

    def _malformed(self, method: str, detail: str, status: int | None = 200) -> ProviderError:
        return self._error(ErrorClass.TEMPORARY, method, f"malformed response: {detail}", status)


def _file_id(result: Any, media: Media) -> str | None:
    """The ``file_id`` of the file a send returned: under the media's own field, else under
    the one Telegram chose (a clip it cannot stream comes back as a ``document``, a silent one
    as an ``animation``): any object of the message that carries a ``file_id``."""
    if not isinstance(result, dict):
        return None
    fields = [result.get(media.field), *(v for k, v in result.items() if k != media.field)]
    for found in fields:
        if isinstance(found, dict) and isinstance(found.get("file_id"), str) and found["file_id"]:
            return str(found["file_id"])
    return None
