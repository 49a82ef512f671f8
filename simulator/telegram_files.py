"""Telegram's files as a bot reads them: an in-memory store, ``getFile`` and the file download.

A file a user sent (a photo) is kept here with its bytes. :func:`add_file` puts one in (the
simulated user's side, ``simulator.telegram_bot``, and tests call it); ``getFile`` answers
``{file_id, file_unique_id, file_size, file_path}`` (400 "Bad Request: invalid file_id" for an id
it does not know, 400 "Bad Request: file is too big" above the 20 MB a bot may download, as
Telegram does), and ``GET /file/bot<token>/<file_path>`` serves the bytes (404 for a wrong token
or path). The download URL carries the bot token, like Telegram's: the simulator records the
download as a call of service ``telegram_file``, without the token.

Admin: ``POST /_sim/telegram/files?kind=photo`` with the raw bytes as the body stores a file and
answers its record (``file_id``, ``file_unique_id``, ``file_path``, ``file_size``); ``GET
/_sim/telegram/files`` lists the records with how often each was fetched. The store is emptied
by ``POST /_sim/reset`` (it follows the state's reset generation).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from simulator.state import SimState, attached, current_call, get_state
from simulator.telegram import TooLarge, read_params, tg_error

#: The largest file a bot may download (``getFile`` refuses larger ones).
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
_ADMIN_MAX_BYTES = 64 * 1024 * 1024
_EXTENSIONS = {"photo": ".jpg", "document": "", "video": ".mp4"}
_FOLDERS = {"photo": "photos", "document": "documents", "video": "videos"}


@dataclass
class StoredFile:
    """One file Telegram keeps for the bot."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes = field(repr=False)
    kind: str = "photo"
    #: ``getFile`` answers and downloads of this file so far.
    lookups: int = 0
    downloads: int = 0

    @property
    def file_size(self) -> int:
        return len(self.data)

    def record(self) -> dict[str, Any]:
        """What the admin API shows (never the bytes)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
            "file_size": self.file_size,
            "kind": self.kind,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "lookups": self.lookups,
            "downloads": self.downloads,
        }


@dataclass
class FileStore:
    """The files of one simulator (one ``SimState``), emptied when the state is reset."""

    by_id: dict[str, StoredFile] = field(default_factory=dict)
    by_path: dict[str, StoredFile] = field(default_factory=dict)


def store(state: SimState) -> FileStore:
    """The file store of ``state``, empty again after each ``reset``."""
    return attached(state, "telegram.files", FileStore)


def add_file(state: SimState, data: bytes, *, kind: str = "photo") -> StoredFile:
    """Keep ``data`` as a file a user sent the bot (``kind``: ``photo``, ``document`` or
    ``video``) and return its record: the ``file_id`` the bot gets in its update, and the
    ``file_unique_id`` and ``file_path`` ``getFile`` will answer."""
    if kind not in _EXTENSIONS:
        raise ValueError(f"kind must be one of {', '.join(_EXTENSIONS)}")
    files = store(state)
    stored = StoredFile(
        file_id=f"AgAC{secrets.token_urlsafe(40)}",
        file_unique_id=f"AQAD{secrets.token_urlsafe(9)}",
        file_path=f"{_FOLDERS[kind]}/file_{len(files.by_id)}{_EXTENSIONS[kind]}",
        data=bytes(data),
        kind=kind,
    )
    files.by_id[stored.file_id] = stored
    files.by_path[stored.file_path] = stored
    return stored


def _token_ok(state: SimState, token: str) -> bool:
    expected = state.config.telegram.bot_token
    return expected is None or token == expected


async def get_file(request: web.Request) -> web.Response:
    """``POST|GET /bot<token>/getFile`` with ``file_id`` (query, JSON or form)."""
    state = get_state(request)
    if not _token_ok(state, request.match_info["token"]):
        return tg_error(request, 401, "Unauthorized")
    try:
        params, _ = await read_params(request, max_upload=0)
    except TooLarge:  # getFile takes no file
        return tg_error(request, 400, "Bad Request: getFile takes no file")
    file_id = params.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        return tg_error(request, 400, "Bad Request: file_id is empty")
    found = store(state).by_id.get(file_id)
    if found is None:
        return tg_error(request, 400, "Bad Request: invalid file_id")
    if found.file_size > MAX_DOWNLOAD_BYTES:
        return tg_error(request, 400, "Bad Request: file is too big")
    found.lookups += 1
    current_call(request).code = 200
    return web.json_response(
        {
            "ok": True,
            "result": {
                "file_id": found.file_id,
                "file_unique_id": found.file_unique_id,
                "file_size": found.file_size,
                "file_path": found.file_path,
            },
        }
    )


async def download(request: web.Request) -> web.Response:
    """``GET /file/bot<token>/<file_path>``: the file's bytes."""
    state = get_state(request)
    found = store(state).by_path.get(request.match_info["file_path"])
    if not _token_ok(state, request.match_info["token"]) or found is None:
        return web.Response(status=404, text="Not Found")
    found.downloads += 1
    return web.Response(body=found.data, content_type="application/octet-stream")


async def admin_add(request: web.Request) -> web.Response:
    """``POST /_sim/telegram/files?kind=photo``: the raw body becomes a file; its record."""
    # Streamed past the application's body limit: a test may store a file above 20 MB.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > _ADMIN_MAX_BYTES:
            return web.json_response({"error": "at most 64 MB"}, status=413)
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return web.json_response({"error": "the body must be the file's bytes"}, status=400)
    try:
        stored = add_file(get_state(request), data, kind=request.query.get("kind", "photo"))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(stored.record())


async def admin_list(request: web.Request) -> web.Response:
    """``GET /_sim/telegram/files``: every file's record."""
    files = store(get_state(request)).by_id.values()
    return web.json_response({"files": [f.record() for f in files]})


def routes() -> list[web.RouteDef]:
    """Registered before ``simulator.telegram``'s catch-all ``/bot<token>/<method>``."""
    return [
        web.post("/bot{token}/{method:getFile}", get_file, name="telegram.getFile"),
        web.get("/bot{token}/{method:getFile}", get_file, name="telegram.getFile.get"),
        web.get("/file/bot{token}/{file_path:.+}", download, name="telegram_file.download"),
        web.post("/_sim/telegram/files", admin_add, name="admin.telegram_files.add"),
        web.get("/_sim/telegram/files", admin_list, name="admin.telegram_files.list"),
    ]
