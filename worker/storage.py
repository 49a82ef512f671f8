"""Where finished results are kept (``STORAGE_DIR``), and a careful streaming download into it.

Files get stable names derived from the job (``<kind>/000/42.mp4``), so a retried step finds the
file it already stored. A download is streamed to a temporary file and renamed into place only
after its status, content type, size and first bytes were checked; a half-written file is never
mistaken for a result.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from worker import http as provider_http
from worker.errors import ErrorClass, ProviderError


@dataclass(frozen=True)
class Stored:
    path: Path
    size: int
    sha256: str


class Storage:
    def __init__(self, root: Path, *, timeout: float = 120.0) -> None:
        self.root = root
        # One client for every download of this process: building one per call costs an SSL
        # context and a connection pool each time.
        # Result files may sit behind a CDN redirect, unlike API calls.
        self._http = httpx.Client(
            timeout=provider_http.timeout(timeout),
            transport=httpx.HTTPTransport(retries=0),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def path_for(self, kind: str, job_id: int, suffix: str) -> Path:
        """``<root>/<kind>/<job_id // 1000 % 1000>/<job_id><suffix>``: stable and spread out."""
        return self.root / kind / f"{job_id // 1000 % 1000:03d}" / f"{job_id}{suffix}"

    def existing(self, path: Path, *, size: int | None = None) -> Stored | None:
        """The file if it is complete (and of ``size`` when given), else None."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if size is not None and st.st_size != size:
            return None
        return Stored(path, st.st_size, _sha256(path))

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def check_writable(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / f".probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()

    def download(
        self,
        url: str,
        dest: Path,
        *,
        provider: str,
        max_bytes: int,
        content_types: tuple[str, ...],
        looks_right: Callable[[bytes], bool],
    ) -> Stored:
        """Stream ``url`` into ``dest``; raise a classified :class:`ProviderError` if the answer
        is not the file we expect (an HTML error page served as 200, a truncated body...)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        client = self._http
        digest = hashlib.sha256()
        size = 0
        try:
            with client.stream("GET", url, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise _error(
                        ErrorClass.TEMPORARY,
                        provider,
                        f"result download answered HTTP {response.status_code}",
                        response.status_code,
                    )
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype not in content_types:
                    raise _error(
                        ErrorClass.TEMPORARY,
                        provider,
                        f"result is {ctype or 'untyped'}, not {' or '.join(content_types)}",
                        200,
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise _error(
                        ErrorClass.USER_ERROR,
                        provider,
                        f"result is {int(declared):,} bytes, over the {max_bytes:,} limit",
                        200,
                    )
                with tmp.open("wb") as out:
                    head = b""
                    for chunk in response.iter_bytes(1 << 16):
                        if len(head) < 64:
                            head += chunk[: 64 - len(head)]
                        size += len(chunk)
                        if size > max_bytes:
                            raise _error(
                                ErrorClass.USER_ERROR,
                                provider,
                                f"result exceeds the {max_bytes:,} byte limit",
                                200,
                            )
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if declared and declared.isdigit() and int(declared) != size:
                    raise _error(
                        ErrorClass.TEMPORARY,
                        provider,
                        f"result was cut short ({size:,} of {int(declared):,} bytes)",
                        200,
                    )
                if size == 0 or not looks_right(head):
                    raise _error(
                        ErrorClass.TEMPORARY,
                        provider,
                        "result does not look like the expected file format",
                        200,
                    )
            os.replace(tmp, dest)
        except httpx.TimeoutException:
            raise _error(
                ErrorClass.TEMPORARY, provider, "result download timed out", None
            ) from None
        except httpx.HTTPError as exc:
            raise _error(
                ErrorClass.TEMPORARY,
                provider,
                f"result download failed: {type(exc).__name__}",
                None,
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(dest, size, digest.hexdigest())


def _error(cls: ErrorClass, provider: str, message: str, status: int | None) -> ProviderError:
    return ProviderError(cls, message, provider=provider, status=status)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
