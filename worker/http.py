"""The one way provider clients talk HTTP: httpx without hidden retries, explicit timeouts.

The pipeline has one retry loop (the policy table), so the transport never retries; connect
fails fast while read and write get the caller's budget. ``transport_outcome`` tells a failure
that surely never reached the provider from one whose outcome is unknown: the difference
matters for anything that costs money or reaches a user when repeated.
"""

from __future__ import annotations

import httpx

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


def transport_outcome(exc: httpx.HTTPError) -> str:
    """``"not_sent"`` when the request surely never arrived, else ``"outcome_unknown"``."""
    return "not_sent" if isinstance(exc, NOT_SENT) else "outcome_unknown"
