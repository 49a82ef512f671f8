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
import ipaddress
import logging
import os
import shutil
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import certifi
import httpcore
import httpx

from worker.errors import ErrorClass, ProviderError

if typing.TYPE_CHECKING:
    from worker.config import Settings

log = logging.getLogger(__name__)

#: Redirects a download follows at most.
MAX_REDIRECTS = 5
#: Seconds of a download before its average rate is held to the minimum.
RATE_GRACE_SECONDS = 10.0
_REDIRECTS = (301, 302, 303, 307, 308)
_SOCKET_OPTION = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
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


class ResultRefused(ProviderError):
    """A result URL (or a redirect hop) that must not be fetched: its scheme or its address."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(
            ErrorClass.USER_ERROR,
            f"result URL refused: {reason}",
            provider=provider,
            user_message="The provider's result could not be fetched.",
        )


@dataclass(frozen=True)
class DownloadPolicy:
    """Where and how fast a result download may go (see the module's docstring)."""

    #: Host names (lower case) that may resolve to any address: ``RESULT_HOSTS``.
    allowed_hosts: frozenset[str] = frozenset()
    allow_http: bool = False
    budget_seconds: float = 300.0
    min_bytes_per_second: float = 50_000.0
    grace_seconds: float = RATE_GRACE_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadPolicy:
        return cls(
            allowed_hosts=frozenset(settings.result_host_names()),
            allow_http=settings.result_allow_http,
            budget_seconds=settings.result_download_seconds,
            min_bytes_per_second=settings.result_min_bytes_per_second,
        )

    def check_url(self, url: str, provider: str) -> httpx.URL:
        """``url`` parsed, if its scheme is allowed and it names a host; else ResultRefused."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, UnicodeError, ValueError):
            raise ResultRefused(provider, "not a valid URL") from None
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in schemes:
            raise ResultRefused(
                provider, f"{parsed.scheme or 'no'} scheme (only {' or '.join(schemes)})"
            )
        if not parsed.host:
            raise ResultRefused(provider, "the URL names no host")
        return parsed

    def address(self, host: str, port: int, provider: str) -> str:
        """The address to connect to for ``host``: ``host`` itself when it is allowed by name,
        else its resolved address, refused unless every address it resolves to is public."""
        name = host.lower().rstrip(".")
        if name in self.allowed_hosts:
            return host
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"result host {name} does not resolve ({exc})",
                provider=provider,
            ) from None
        addresses = [str(info[4][0]) for info in infos]
        for address in addresses:
            if not is_public(address):
                raise ResultRefused(provider, f"{name} resolves to {address}, not a public address")
        if not addresses:
            raise ResultRefused(provider, f"{name} resolves to nothing")
        return addresses[0]


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP address) is a public unicast one: not loopback, private,
    link-local (the metadata address among them), shared (CGNAT), multicast or reserved."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class _Clock:
    """One download's deadline: the end of its budget, or sooner the moment its average rate
    would fall below the minimum if no more bytes came (after the grace)."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.received = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def deadline(self) -> float:
        policy = self.policy
        end = self.started + policy.budget_seconds
        if policy.min_bytes_per_second > 0:
            starved = max(policy.grace_seconds, self.received / policy.min_bytes_per_second)
            end = min(end, self.started + starved)
        return end

    def left(self, timeout: float | None) -> float:
        left = self.deadline() - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the download's time or rate budget is spent")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the download's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, clock: _Clock) -> None:
        self._inner = inner
        self._clock = clock

    def _left(self, timeout: float | None) -> float:
        return self._clock.left(timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._left(timeout))
        return _DeadlineStream(inner, self._clock)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to an address the policy accepts, and only until the deadline."""

    def __init__(self, policy: DownloadPolicy, provider: str, clock: _Clock) -> None:
        self._policy = policy
        self._provider = provider
        self._clock = clock
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        address = self._policy.address(host, port, self._provider)
        stream = self._inner.connect_tcp(
            address, port, self._clock.left(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream, self._clock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise ResultRefused(self._provider, "a Unix socket")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


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
        clock = _Clock(policy)
        backend = _GuardedBackend(policy, provider, clock)
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
            raise _error(ErrorClass.TEMPORARY, provider, _too_slow(clock), None) from None
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
        clock: _Clock,
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
                    raise _error(ErrorClass.TEMPORARY, provider, _too_slow(clock), 200)
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


def _too_slow(clock: _Clock) -> str:
    policy, elapsed = clock.policy, clock.elapsed()
    if elapsed >= policy.budget_seconds - 0.5:
        return (
            f"result download took over its {policy.budget_seconds:g} s budget "
            f"({clock.received:,} bytes received)"
        )
    return (
        f"result download too slow: {clock.received:,} bytes in {elapsed:.0f} s "
        f"(at least {policy.min_bytes_per_second / 1000:,.0f} kB/s)"
    )


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
