"""The one way provider clients talk HTTP: httpx without hidden retries, explicit timeouts.

The pipeline has one retry loop (the policy table), so the transport never retries; connect
fails fast while read and write get the caller's budget. ``outcome_unknown`` tells a failure
that surely never reached the provider from one whose outcome is unknown: the difference
matters for anything that costs money or reaches a user when repeated.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

import httpx

#: The longest wait a provider's ``Retry-After`` may impose on a key. A larger value (an HTTP
#: date years ahead, a typo in a proxy's header) would otherwise cool the key for that long.
MAX_RETRY_AFTER_SECONDS = 3600.0

#: Transport failures that prove the request never reached the provider.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def timeout(seconds: float, *, connect: float = 10.0) -> httpx.Timeout:
    """Connect within ``min(seconds, connect)``; read, write and pool within ``seconds``."""
    return httpx.Timeout(connect=min(seconds, connect), read=seconds, write=seconds, pool=seconds)


def client(seconds: float) -> httpx.Client:
    """A client with no transport retries, no redirects and :func:`timeout`."""
    return httpx.Client(
        timeout=timeout(seconds),
        transport=httpx.HTTPTransport(retries=0),
        follow_redirects=False,
    )


def outcome_unknown(exc: httpx.HTTPError) -> bool:
    """False when the request surely never arrived, else True: it may have been done (for
    :attr:`worker.errors.ProviderError.outcome_unknown`)."""
    return not isinstance(exc, NOT_SENT)


def retry_after(headers: Mapping[str, str] | None, *, body_seconds: object = None) -> float | None:
    """The wait a provider asked for, in seconds, at most :data:`MAX_RETRY_AFTER_SECONDS`.

    ``body_seconds`` is a number some APIs put in the body (Telegram's
    ``parameters.retry_after``); it wins when it is a finite number. Otherwise the headers:
    ``retry-after-ms`` (milliseconds) before ``retry-after`` (delta-seconds or an HTTP
    date). None when nothing usable was sent; a negative wait (a date in the past) is 0.
    ``headers`` is looked up by lower-case name: httpx's headers (and a provider SDK's) match
    any case.
    """
    candidates: list[float] = []
    if isinstance(body_seconds, (int, float)) and not isinstance(body_seconds, bool):
        candidates.append(float(body_seconds))
    if headers is not None:
        for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
            parsed = _header_seconds(headers.get(name), scale)
            if parsed is not None:
                candidates.append(parsed)
    for value in candidates:
        if math.isfinite(value):
            return min(max(0.0, value), MAX_RETRY_AFTER_SECONDS)
    return None


def _header_seconds(raw: str | None, scale: float) -> float | None:
    """A header's number divided by ``scale``, or (seconds only) an HTTP date from now."""
    if not raw or not raw.strip():
        return None
    raw = raw.strip()
    try:
        return float(raw) / scale
    except ValueError:
        pass
    if scale != 1.0:
        return None
    try:
        return email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
