"""Keeping the user's CSV: copied into storage at submit, named by its content.

The copy is made before the submit transaction, so a job never points at a file that may vanish
(a temp download of the bot's). It is named by its sha256 (``report/uploads/ab/<sha256>.csv``
under ``STORAGE_DIR``): the same file submitted twice, or a replayed submit, is stored once, and
the name proves the content. A copy is written to a temporary file and renamed into place only
when complete and hashed, so a half-written upload is never mistaken for one.

Every refusal is an :class:`~worker.errors.InvalidRequest` on the field ``csv``, raised before
anything is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import InvalidRequest, WorkerError

__all__ = ["Upload", "store_upload", "stored_upload", "upload_path"]

UPLOADS_DIR = "report/uploads"
CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Upload:
    relative: str  # path under STORAGE_DIR
    file_name: str  # the name the user gave it
    size: int
    sha256: str


def upload_path(sha256: str) -> str:
    """Where an upload with this digest lives, relative to ``STORAGE_DIR``."""
    return f"{UPLOADS_DIR}/{sha256[:2]}/{sha256}.csv"


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB" if n < 10**9 else f"{n / 1_000_000_000:,.2f} GB"


def store_upload(source: Any, root: Path, *, max_bytes: int) -> Upload:
    """Check ``source`` (a path) and copy it into ``root`` unless already there."""
    if not isinstance(source, str | os.PathLike) or not os.fspath(source):
        raise InvalidRequest("csv", "is required: the path of the CSV file")
    path = Path(os.fspath(source)).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidRequest("csv", f"file {path} does not exist") from None
    except OSError as exc:
        raise InvalidRequest("csv", f"file {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidRequest("csv", f"{path} is not a regular file")
    if st.st_size == 0:
        raise InvalidRequest("csv", f"file {path} is empty")
    if st.st_size > max_bytes:
        raise InvalidRequest(
            "csv",
            f"file is {_megabytes(st.st_size)}, above the {_megabytes(max_bytes)} limit",
        )
    file_name = _file_name(path.name)
    try:
        digest, size = _digest(path, max_bytes)
    except OSError as exc:
        raise InvalidRequest("csv", f"file {path} cannot be read ({exc.strerror})") from None
    relative = upload_path(digest)
    dest = root / relative
    try:
        if dest.stat().st_size == size:
            os.utime(dest)  # used now: the retention pass keeps it (jobs.report.retention)
            return Upload(relative, file_name, size, digest)  # stored before: not copied again
    except FileNotFoundError:
        pass
    _copy(path, dest, digest, max_bytes)
    return Upload(relative, file_name, size, digest)


def stored_upload(request: Any, root: Path) -> Upload:
    """An upload already in storage (a clone or retry passes the stored payload back)."""
    digest = request.get("sha256")
    relative = request.get("csv")
    size = request.get("size")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise InvalidRequest("sha256", "must be the 64 hex digits of a stored upload")
    if relative != upload_path(digest):
        raise InvalidRequest("csv", "must be the stored path of the upload named by sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InvalidRequest("size", "must be the stored upload's size in bytes")
    try:
        found = (root / relative).stat().st_size
        os.utime(root / relative)  # used now: the retention pass keeps it
    except FileNotFoundError:
        found = -1
    if found != size:
        raise InvalidRequest("csv", "the stored upload is gone; upload the file again")
    return Upload(relative, _file_name(request.get("file_name") or "sales.csv"), size, digest)


def _file_name(name: Any) -> str:
    text = "".join(c for c in str(name) if c.isprintable()).strip()
    return text[:200] or "sales.csv"


def _digest(path: Path, max_bytes: int) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise InvalidRequest("csv", f"file grew above the {_megabytes(max_bytes)} limit")
            h.update(chunk)
    if size == 0:
        raise InvalidRequest("csv", f"file {path} is empty")
    return h.hexdigest(), size


def _copy(path: Path, dest: Path, digest: str, max_bytes: int) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        with path.open("rb") as src, tmp.open("wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    break
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != digest:
            raise InvalidRequest("csv", "file changed while it was being read; send it again")
        os.replace(tmp, dest)
    except OSError as exc:
        raise WorkerError(
            f"cannot store the CSV under STORAGE_DIR ({exc.strerror or exc}); check that "
            "STORAGE_DIR exists, is writable and has space"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
