"""Checks shared by every request: ids, counts, idempotency keys, URLs and text fields.

Each check raises :class:`InvalidRequest` naming the field and the reason, before anything is
written. Job kinds build their payload validation from these.

Text a user typed is checked for what cannot be shown or stored safely:

* a lone surrogate (``\ud800``: not encodable as UTF-8, so PostgreSQL would refuse it) is refused;
* control characters, C0 (except TAB and LF), DEL and C1 (``U+0080``..``U+009F``, e.g. NEL and
  the terminal's CSI), are refused;
* bidi embeddings, overrides and isolates (``U+202A``..``U+202E``, ``U+2066``..``U+2069``), which
  reorder what a reader sees (``gpj.exe`` shown as ``exe.jpg``), are refused;
* invisible format characters are removed: zero-width space, word joiner, BOM, soft hyphen,
  the direction marks (LRM, RLM, ALM) and the other invisible ``Cf`` characters, except a
  zero-width joiner or non-joiner between two non-ASCII characters (emoji sequences,
  Persian and Indic scripts need them).

A URL may carry none of these: any character that is not printable is refused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from worker.errors import InvalidRequest

MAX_ID = 2**63 - 1

#: Bidi embeddings, overrides and isolates: refused.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Joiners kept between two non-ASCII characters (emoji, Persian, Indic), removed elsewhere.
_JOINERS = frozenset("\u200c\u200d")


def _is_surrogate(c: str) -> bool:
    return 0xD800 <= ord(c) <= 0xDFFF


def _is_control(c: str) -> bool:
    o = ord(c)
    return (o < 32 and c not in "\n\t") or 0x7F <= o <= 0x9F


def _non_ascii(*chars: str) -> bool:
    return not any(c.isascii() for c in chars)


def clean_text(field: str, value: str) -> str:
    """``value`` without invisible format characters, or :class:`InvalidRequest` if it has a
    lone surrogate, a control character or a bidi override (see the module's docstring)."""
    if any(_is_surrogate(c) for c in value):
        raise InvalidRequest(field, "is not valid text (it has a lone UTF-16 surrogate)")
    if any(_is_control(c) for c in value):
        raise InvalidRequest(field, "must not contain control characters")
    if any(c in BIDI_CONTROLS for c in value):
        raise InvalidRequest(field, "must not contain text direction overrides")
    if value.isascii():
        return value
    last = len(value) - 1
    return "".join(
        c
        for i, c in enumerate(value)
        if unicodedata.category(c) != "Cf"
        or (c in _JOINERS and 0 < i < last and _non_ascii(value[i - 1], value[i + 1]))
    )


def positive_id(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, f"must be a positive integer, not {type(value).__name__}")
    if not 0 < value <= MAX_ID:
        raise InvalidRequest(field, "must be a positive integer")
    return value


def chat_id(field: str, value: Any) -> int:
    """A Telegram chat id: positive for a private chat (the user's own id), negative for a
    group, ``-100…`` for a supergroup or channel; never 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            field, f"must be a Telegram chat id (an integer), not {type(value).__name__}"
        )
    if value == 0 or not -MAX_ID <= value <= MAX_ID:
        raise InvalidRequest(field, "must be a Telegram chat id: a non-zero 64-bit integer")
    return value


def count_in(field: str, value: Any, allowed: Iterable[int]) -> int:
    allowed = tuple(allowed)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise InvalidRequest(field, f"must be one of {', '.join(map(str, allowed))}")
    return value


def text(
    field: str, value: Any, *, min_len: int = 1, max_len: int, required: bool = True
) -> str | None:
    """A string of ``min_len``..``max_len`` characters after trimming; no control characters."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string" if value is not None else "is required")
    stripped: str = clean_text(field, value).strip()
    if not stripped and not required:
        return None
    if len(stripped) < min_len:
        raise InvalidRequest(field, "must not be empty")
    if len(stripped) > max_len:
        raise InvalidRequest(
            field, f"must be at most {max_len:,} characters (got {len(stripped):,})"
        )
    return stripped


def http_url(field: str, value: Any, *, max_len: int = 2048) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be an http(s) URL string")
    url: str = value.strip()
    if len(url) > max_len:
        raise InvalidRequest(field, f"must be at most {max_len} characters")
    if not url.isprintable():  # controls, surrogates, bidi and zero-width characters
        raise InvalidRequest(field, "must be an http:// or https:// URL of printable characters")
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in url):
        raise InvalidRequest(field, "must be an http:// or https:// URL")
    return url


def idempotency_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not value.isprintable():
        raise InvalidRequest("idempotency_key", "must be 1 to 255 printable characters")
    return value


def mapping(field: str, value: Any, *, known: Iterable[str]) -> Mapping[str, Any]:
    """An object with only ``known`` keys (a JSON string is refused, not parsed)."""
    if isinstance(value, str | bytes):
        raise InvalidRequest(field, "must be an object (a dict), not a string")
    if not isinstance(value, Mapping):
        raise InvalidRequest(field, f"must be an object (a dict), not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in set(known))
    if unknown:
        raise InvalidRequest(f"{field}.{unknown[0]}", "is not a known field")
    return value
