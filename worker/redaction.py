"""One function that removes secrets from any text, and a logging filter that applies it.

Configured secrets (API keys, the bot token, URL passwords) are registered when settings load;
on top of those, anything that looks like a bearer token, an ``sk-``-style API key, a
Telegram bot token (in a URL, URL-encoded, or bare: ``123456:AAH…``), a URL's password (even one
holding ``@`` or ``/``) or a libpq ``password=`` is masked, so a secret we were never told about
is still caught.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_secret_re: re.Pattern[str] | None = None

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{4,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"),
    # a Telegram bot token in a URL, its colon plain or URL-encoded (bot123%3AAAH...)
    re.compile(r"(?i)(/bot)\d{3,}(?::|%3a)[A-Za-z0-9_-]{10,}"),
    # a URL's password: up to the token's last '@', so a password holding '@' or '/' is masked
    # whole (a path holding '@' loses a little more than needed: safe side)
    re.compile(r"(?i)(://[^:/@\s]*:)[^\s]+(@)"),
    # a bare bot token (<bot id>:<35 characters>), never registered as a secret
    re.compile(r"(?i)(?<![A-Za-z0-9_])\d{3,}(?::|%3a)[A-Za-z0-9_-]{30,}"),
    # a libpq keyword/value connection string's password
    re.compile(r"(?i)(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']+)"),
]


def register_secrets(secrets: Iterable[str]) -> None:
    """Add secrets that must never appear in output. Short strings are ignored (too many hits)."""
    global _secrets, _secret_re
    with _lock:
        merged = set(_secrets) | {s for s in secrets if s and len(s) >= 6}
        _secrets = frozenset(merged)
        if merged:
            alternatives = sorted(merged, key=len, reverse=True)
            _secret_re = re.compile("|".join(re.escape(s) for s in alternatives))
        else:
            _secret_re = None


def clear_secrets() -> None:
    """Forget registered secrets (tests)."""
    global _secrets, _secret_re
    with _lock:
        _secrets = frozenset()
        _secret_re = None


def redact(text: Any) -> str:
    """Return ``str(text)`` with every known secret and secret-looking token masked."""
    s = text if isinstance(text, str) else str(text)
    pattern = _secret_re
    if pattern is not None:
        s = pattern.sub(MASK, s)
    s = _PATTERNS[0].sub(lambda m: m.group(1) + MASK, s)
    s = _PATTERNS[1].sub(MASK, s)
    s = _PATTERNS[2].sub(lambda m: m.group(1) + MASK, s)
    s = _PATTERNS[3].sub(lambda m: m.group(1) + MASK + m.group(2), s)
    s = _PATTERNS[4].sub(MASK, s)
    s = _PATTERNS[5].sub(lambda m: m.group(1) + MASK, s)
    return s


def redact_obj(value: Any) -> Any:
    """Redact every string inside nested dicts, lists and tuples (for Sentry events)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_obj(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_obj(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Logging filter that renders the message and masks secrets in it and in tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the log line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


def install_logging(level: int = logging.INFO) -> None:
    """Configure root logging once, with every handler going through the redaction filter."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
        )
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    from worker.kinds import all_providers

    # httpx logs every request URL at INFO, and Telegram's URL carries the bot token; a
    # provider's client library may log its requests too (``Provider.loggers``).
    loggers = [name for provider in all_providers() for name in provider.loggers]
    for noisy in ("httpx", "httpx2", "httpcore", *loggers):
        logging.getLogger(noisy).setLevel(logging.WARNING)
