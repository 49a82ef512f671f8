"""Keeping the user's CSV: copied into storage at submit, named by its content.

The copy is made before the submit transaction, so a job never points at a file that may vanish
(a temp download of the bot's). It is named by its sha256 (``report/uploads/ab/<sha256>.csv``
under ``STORAGE_DIR``): the same file submitted twice, or a replayed submit, is stored once, and
the name proves the content. A copy is written to a temporary file and renamed into place only
when complete and hashed, so a half-written upload is never mistaken for one.

Every refusal is an :class:`~worker.errors.InvalidRequest` on the field ``csv``, raised before
anything is written. A file is refused unless it reads as a sales CSV (its first lines name a
date and an earnings column, within the parser's limits): whatever path the caller passes,
``/etc/shadow`` included, nothing of a file that is not one is stored or quoted back. A stored
upload is readable by its owner only (0600).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.report.parse import NO_COLUMNS, ReportError, SalesFile
from worker.errors import InvalidRequest, WorkerError

__all__ = ["Upload", "store_upload", "stored_upload", "upload_path"]

UPLOADS_DIR = "report/uploads"
#: A stored upload's mode: the seller's sales are nobody else's business.
FILE_MODE = 0o600
NOT_A_CSV = (
    "is not a sales CSV: none of its first lines names a date column and an earnings column "
    "(e.g. 'Date' and 'Earnings'), separated by commas, semicolons, tabs or pipes"
)
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
    _check_csv(path)
    try:
        digest, size = _digest(path, max_bytes)
    except OSError as exc:
        raise InvalidRequest("csv", f"file {path} cannot be read ({exc.strerror})") from None
    relative = upload_path(digest)
    dest = root / relative
    try:
        if dest.stat().st_size == size:
            os.utime(dest)  # used now: the retention pass keeps it (jobs.report.retention)
            os.chmod(dest, FILE_MODE)  # stored before this rule
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


def _check_csv(path: Path) -> None:
    """Refuse a file that is not a sales CSV, without quoting any of it."""
    with path.open("rb") as f:
        head = f.read(4096)
    utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    if b"\x00" in head and not utf16:
        raise InvalidRequest("csv", "is not a CSV file: it holds binary data")
    try:
        layout = SalesFile(path).layout
    except ReportError as exc:
        # "the file is empty", "line 1 is longer than...": no content in them. The message
        # for a file without usable columns quotes its first line: not passed on.
        reason = NOT_A_CSV if str(exc).startswith(NO_COLUMNS) else str(exc)
        raise InvalidRequest("csv", reason) from None
    except (OSError, UnicodeError):
        raise InvalidRequest("csv", "cannot be read as text") from None
    if layout.width < 2:
        raise InvalidRequest("csv", NOT_A_CSV)


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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # the umask cannot widen it, a leftover part file keeps none
        with path.open("rb") as src, os.fdopen(fd, "wb") as out:
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
