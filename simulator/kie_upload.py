"""KIE's File Upload API: ``POST /api/file-stream-upload`` and the files it then serves.

As documented: Bearer auth like the rest of KIE (401 for a missing or unknown key), multipart
``file``, ``uploadPath`` and optional ``fileName`` (400 when ``file`` or ``uploadPath`` is
missing; the same name in the same path replaces the file), and the answer ``{"success": true,
"code": 200, "msg", "data": {"fileName", "filePath", "downloadUrl", "fileSize", "mimeType",
"uploadedAt"}}``. ``downloadUrl`` points at this simulator (``GET /kie-uploads/<path>``), so the
simulated createTask and OpenAI can look at the very bytes the worker uploaded.

``GET /_sim/kie/uploads`` lists every upload (key, path, name, size, sha256, MIME type, URL, and
how often the file was fetched); the store is emptied by ``POST /_sim/reset``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, web

from simulator.kie import authenticate, kie_error, public_base
from simulator.state import SimState, attached, current_call, get_state

#: The largest upload accepted (KIE documents none; the models take at most 20 MB).
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: Where uploads are served, under the simulator's public base URL.
FILES_PREFIX = "/kie-uploads/"
_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Upload:
    """One uploaded file."""

    key: str
    upload_path: str
    file_name: str
    mime: str
    data: bytes = field(repr=False)
    download_url: str = ""
    at: float = field(default_factory=time.time)
    fetches: int = 0

    @property
    def file_path(self) -> str:
        return f"{self.upload_path}/{self.file_name}"

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "upload_path": self.upload_path,
            "file_name": self.file_name,
            "file_path": self.file_path,
            "mime_type": self.mime,
            "file_size": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "download_url": self.download_url,
            "at": self.at,
            "fetches": self.fetches,
        }


@dataclass
class UploadStore:
    """The uploads of one simulator, emptied when its state is reset."""

    files: dict[str, Upload] = field(default_factory=dict)  # by file_path
    log: list[Upload] = field(default_factory=list)  # every upload, in order (a replaced one too)


def store(state: SimState) -> UploadStore:
    return attached(state, "kie.uploads", UploadStore)


def lookup(state: SimState, url: str) -> Upload | None:
    """The upload ``url`` serves, if it is one of this simulator's (by its path)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    if not path.startswith(FILES_PREFIX):
        return None
    return store(state).files.get(path.removeprefix(FILES_PREFIX))


def _bad(request: web.Request, message: str) -> web.Response:
    return kie_error(request, 400, message, real_status=True)


async def _read_form(request: web.Request) -> tuple[dict[str, str], tuple[str, str, bytes] | None]:
    """The text fields and the ``file`` part (its name, content type and bytes)."""
    fields: dict[str, str] = {}
    upload: tuple[str, str, bytes] | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            await part.release()
            continue
        if part.name == "file" and part.filename is not None:
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                if len(data) > MAX_UPLOAD_BYTES:
                    raise ValueError("file too large")
            ctype = part.headers.get("Content-Type") or "application/octet-stream"
            upload = (part.filename, ctype, bytes(data))
        elif part.name:
            fields[part.name] = await part.text()
    return fields, upload


async def file_stream_upload(request: web.Request) -> web.StreamResponse:
    """``POST /api/file-stream-upload``."""
    key = authenticate(request)
    if isinstance(key, web.Response):
        return key
    if request.content_type != "multipart/form-data":
        return _bad(request, "the request must be multipart/form-data")
    try:
        fields, upload = await _read_form(request)
    except ValueError:
        return _bad(request, f"file is larger than {MAX_UPLOAD_BYTES} bytes")
    upload_path = _SAFE_PART.sub("-", fields.get("uploadPath", "").strip("/ ")).strip("-")
    if upload is None:
        return _bad(request, "file is required")
    if not upload_path:
        return _bad(request, "uploadPath is required")
    sent_name, mime, data = upload
    name = _SAFE_PART.sub("-", fields.get("fileName") or sent_name or "").strip("-.")
    name = name or f"upload-{secrets.token_hex(6)}"
    state = get_state(request)
    item = Upload(key, upload_path, name, mime, data)
    item.download_url = f"{public_base(request)}{FILES_PREFIX}{item.file_path}"
    uploads = store(state)
    uploads.files[item.file_path] = item  # the same name in the same path replaces the file
    uploads.log.append(item)
    current_call(request).code = 200
    return web.json_response(
        {
            "success": True,
            "code": 200,
            "msg": "File uploaded successfully",
            "data": {
                "fileName": item.file_name,
                "filePath": item.file_path,
                "downloadUrl": item.download_url,
                "fileSize": len(data),
                "mimeType": mime,
                "uploadedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(item.at)),
            },
        }
    )


async def uploaded_file(request: web.Request) -> web.Response:
    """``GET /kie-uploads/<uploadPath>/<fileName>``: an uploaded file, as KIE serves it."""
    item = store(get_state(request)).files.get(request.match_info["path"])
    if item is None:
        return web.Response(status=404, text="404 Not Found")
    item.fetches += 1
    return web.Response(body=item.data, content_type=item.mime)


async def admin_uploads(request: web.Request) -> web.Response:
    """``GET /_sim/kie/uploads``: every upload since the last reset, in order."""
    return web.json_response({"uploads": [u.record() for u in store(get_state(request)).log]})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/file-stream-upload", file_stream_upload, name="kie.fileStreamUpload"),
        web.get(FILES_PREFIX + "{path:.+}", uploaded_file, name="kie.uploadedFile"),
        web.get("/_sim/kie/uploads", admin_uploads, name="admin.kie_uploads"),
    ]
