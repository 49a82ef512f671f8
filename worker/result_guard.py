"""The rules for fetching a URL a provider gave us (a result file), enforced where the connection
is made (see :mod:`worker.storage` for why).

:class:`DownloadPolicy` says which schemes and hosts are allowed and how long and how slowly a
download may run; :class:`GuardedBackend` is an httpcore network backend that resolves each
host itself, refuses an address that is not public (unless the host is named in
``RESULT_HOSTS``) and connects to the very address it checked, at every redirect hop; every
read and write of its connections ends by the download's :class:`Clock` deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

from worker.errors import ErrorClass, ProviderError

if typing.TYPE_CHECKING:
    from worker.config import Settings

#: Seconds of a download before its average rate is held to the minimum.
RATE_GRACE_SECONDS = 10.0
_SOCKET_OPTION = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


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


class Clock:
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


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the download's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, clock: Clock) -> None:
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
        return DeadlineStream(inner, self._clock)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Connects only to an address the policy accepts, and only until the deadline."""

    def __init__(self, policy: DownloadPolicy, provider: str, clock: Clock) -> None:
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
        return DeadlineStream(stream, self._clock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise ResultRefused(self._provider, "a Unix socket")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def too_slow(clock: Clock) -> str:
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
