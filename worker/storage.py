"""Where finished results are kept (``STORAGE_DIR``), and a careful streaming download into it.

Files get stable names derived from the job (``<kind>/000/42.mp4``), so a retried step finds the
file it already stored. A download is streamed to a temporary file and renamed into place only
after its status, content type, size and first bytes were checked; a half-written file is never
mistaken for a result.

A result URL comes from a provider, and a provider (or whoever feeds it a URL) must not be able
to make a worker fetch from inside our network. So a download, by :class:`DownloadPolicy`:

* speaks ``https`` only (``RESULT_ALLOW_HTTP`` allows ``http``, for the simulator);
* refuses a host whose address, once resolved, is not a public one (loopback, private,
  link-local, the cloud metadata address ``169.254.169.254``, carrier-grade NAT, multicast,
  reserved), at every redirect hop, and connects to the very address it checked (a DNS answer
  that changes between the check and the connection changes nothing). A host named in
  ``RESULT_HOSTS`` may resolve to any address (how the simulator is reached); a redirect from
  it to a host that is not named is checked as above;
* has a wall-clock budget for the whole download (``RESULT_DOWNLOAD_SECONDS``, enforced on
  every read, not only between chunks) and, after a short grace, a minimum average rate
  (``RESULT_MIN_BYTES_PER_SECOND``): a server sending one byte every two seconds is cut off;
* follows at most :data:`MAX_REDIRECTS` redirects.

A refused address or scheme is a USER_ERROR (nothing to retry: the URL itself is wrong); a slow
or stalled server is TEMPORARY. :meth:`Storage.safe_link` applies the same rules to a link
that would be sent to the user instead of the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import ssl
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import certifi
import httpcore

from worker.errors import ErrorClass, ProviderError
from worker.result_guard import (
    Clock,
    DownloadPolicy,
    GuardedBackend,
    ResultRefused,
    is_public,
    too_slow,
)

__all__ = ["DownloadPolicy", "ResultRefused", "Storage", "Stored", "is_public"]

if typing.TYPE_CHECKING:
    from worker.config import Settings

log = logging.getLogger(__name__)

#: Redirects a download follows at most.
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_TIMEOUTS = (
    httpcore.ConnectTimeout,
    httpcore.ReadTimeout,
    httpcore.WriteTimeout,
    httpcore.PoolTimeout,
)
_TRANSPORT_ERRORS = (
    httpcore.ConnectError,
    httpcore.ReadError,
    httpcore.WriteError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
    OSError,
)


@dataclass(frozen=True)
class Stored:
    path: Path
    size: int
    sha256: str


class Storage:
    def __init__(
        self, root: Path, *, timeout: float = 120.0, policy: DownloadPolicy | None = None
    ) -> None:
        self.root = root
        self.timeout = timeout
        self.policy = policy or DownloadPolicy()
        # One SSL context for every download of this process (building one costs).
        self._ssl = ssl.create_default_context(cafile=certifi.where())

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(settings.storage_dir, policy=DownloadPolicy.from_settings(settings))

    def close(self) -> None:
        """Nothing to release: every download has its own connection."""

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

    def safe_link(self, url: str, *, provider: str) -> str | None:
        """``url`` if it may be sent to a user as a link (the download's rules: its scheme, and
        a host named in ``RESULT_HOSTS`` or resolving to public addresses only), else None."""
        try:
            parsed = self.policy.check_url(url, provider)
            self.policy.address(parsed.host, parsed.port or 443, provider)
        except ProviderError as exc:
            log.warning("not sending the result link: %s", exc.message)
            return None
        return url

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
        is not the file we expect (an HTML error page served as 200, a truncated body...), if
        the URL or a redirect is refused (:class:`ResultRefused`), or if the server is too slow."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        policy = self.policy
        clock = Clock(policy)
        backend = GuardedBackend(policy, provider, clock)
        digest = hashlib.sha256()
        size = 0
        try:
            with httpcore.ConnectionPool(
                ssl_context=self._ssl, network_backend=backend, retries=0
            ) as pool:
                response = self._follow(pool, url, provider)
                try:
                    size = self._receive(
                        response,
                        tmp,
                        digest,
                        provider=provider,
                        max_bytes=max_bytes,
                        content_types=content_types,
                        looks_right=looks_right,
                        clock=clock,
                    )
                finally:
                    response.close()
            os.replace(tmp, dest)
        except _TIMEOUTS:
            raise _error(ErrorClass.TEMPORARY, provider, too_slow(clock), None) from None
        except _TRANSPORT_ERRORS as exc:
            raise _error(
                ErrorClass.TEMPORARY,
                provider,
                f"result download failed: {type(exc).__name__}",
                None,
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(dest, size, digest.hexdigest())

    def _follow(self, pool: httpcore.ConnectionPool, url: str, provider: str) -> httpcore.Response:
        """The response at the end of ``url``'s redirects, each hop checked."""
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            parsed = self.policy.check_url(current, provider)
            request = httpcore.Request(
                "GET",
                httpcore.URL(
                    scheme=parsed.raw_scheme,
                    host=parsed.raw_host,
                    port=parsed.port,
                    target=parsed.raw_path,
                ),
                headers=[(b"Host", parsed.netloc), (b"Accept", b"*/*")],
                extensions={
                    "timeout": {
                        "connect": min(self.timeout, 10.0),
                        "read": self.timeout,
                        "write": self.timeout,
                        "pool": self.timeout,
                    }
                },
            )
            response = pool.handle_request(request)
            if response.status not in _REDIRECTS:
                return response
            location = _header(response, "location")
            response.close()
            if not location:
                raise _error(
                    ErrorClass.TEMPORARY,
                    provider,
                    f"result download answered HTTP {response.status} without a Location",
                    response.status,
                )
            current = urljoin(str(parsed), location)
        raise _error(
            ErrorClass.TEMPORARY,
            provider,
            f"result download redirected more than {MAX_REDIRECTS} times",
            None,
        )

    def _receive(
        self,
        response: httpcore.Response,
        tmp: Path,
        digest: typing.Any,
        *,
        provider: str,
        max_bytes: int,
        content_types: tuple[str, ...],
        looks_right: Callable[[bytes], bool],
        clock: Clock,
    ) -> int:
        """Check the answer and stream its body into ``tmp``; its size."""
        if response.status != 200:
            raise _error(
                ErrorClass.TEMPORARY,
                provider,
                f"result download answered HTTP {response.status}",
                response.status,
            )
        ctype = (_header(response, "content-type") or "").split(";")[0].strip().lower()
        if ctype not in content_types:
            raise _error(
                ErrorClass.TEMPORARY,
                provider,
                f"result is {ctype[:60] or 'untyped'}, not {' or '.join(content_types)}",
                200,
            )
        raw_length = (_header(response, "content-length") or "").strip()
        declared = int(raw_length) if raw_length.isascii() and raw_length.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise _error(
                ErrorClass.USER_ERROR,
                provider,
                f"result is {declared:,} bytes, over the {max_bytes:,} limit",
                200,
            )
        size = 0
        with tmp.open("wb") as out:
            head = b""
            for chunk in response.iter_stream():
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
                clock.received = size
                if time.monotonic() >= clock.deadline():
                    raise _error(ErrorClass.TEMPORARY, provider, too_slow(clock), 200)
            out.flush()
            os.fsync(out.fileno())
        if declared is not None and declared != size:
            raise _error(
                ErrorClass.TEMPORARY,
                provider,
                f"result was cut short ({size:,} of {declared:,} bytes)",
                200,
            )
        if size == 0 or not looks_right(head):
            raise _error(
                ErrorClass.TEMPORARY,
                provider,
                "result does not look like the expected file format",
                200,
            )
        return size


def _header(response: httpcore.Response, name: str) -> str | None:
    wanted = name.encode().lower()
    for key, value in response.headers:
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def _error(cls: ErrorClass, provider: str, message: str, status: int | None) -> ProviderError:
    return ProviderError(cls, message, provider=provider, status=status)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
