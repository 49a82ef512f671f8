"""Who may use the dashboard: users and roles from ``DASHBOARD_USERS``, password hashes, sessions.

``DASHBOARD_USERS`` (the environment, ``.env``, or a file of that name in
``$CREDENTIALS_DIRECTORY``, like the other credentials) holds comma-separated
``name:role:hash`` entries. ``role`` is ``viewer`` (reads everything, changes nothing) or
``admin`` (also retries, cancels, enables and disables). ``hash`` is what
``worker dashboard hash-password`` prints for a password read on standard input:

    scrypt$<log2 n>$<r>$<p>$<salt, base64url>$<key, base64url>

scrypt from the standard library (n = 2^15, r = 8, p = 1: about 32 MiB and a few tens of ms per
check), a 16-byte random salt, a 32-byte key, compared in constant time. No ``:`` or ``,`` can
occur in it, so the entries need no quoting.

Sessions live in the dashboard process (a restart logs everyone out): a random 256-bit token in
an HttpOnly, SameSite=Strict cookie, its CSRF token (:mod:`worker.dashboard.csrf`), and an
expiry that slides with use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigError

#: The environment variable (and credential file) holding the users.
USERS_VARIABLE = "DASHBOARD_USERS"

SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
#: scrypt needs 128 * r * n bytes; allow that with room to spare.
_MAXMEM = 256 * 1024 * 1024

#: An idle session ends after this long.
SESSION_SECONDS = 8 * 3600.0
#: At most this many live sessions; the oldest is dropped beyond it.
MAX_SESSIONS = 10_000
MIN_PASSWORD_CHARS = 8

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str = field(repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# --- password hashes --------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, log2_n: int = SCRYPT_LOG2_N) -> str:
    """The ``scrypt$...`` hash of ``password`` with a fresh random salt."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"a dashboard password needs at least {MIN_PASSWORD_CHARS} characters")
    salt = os.urandom(SALT_BYTES)
    key = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=2**log2_n,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_MAXMEM,
        dklen=KEY_BYTES,
    )
    return f"scrypt${log2_n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not an scrypt$ hash")
    log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    salt, key = _unb64(parts[4]), _unb64(parts[5])
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("salt or key too short")
    return log2_n, r, p, salt, key


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (constant-time comparison)."""
    try:
        log2_n, r, p, salt, key = _parse_hash(password_hash)
    except ValueError:
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=len(key)
    )
    return hmac.compare_digest(candidate, key)


#: A hash of no password, checked when the name is unknown so that a wrong name takes as long
#: as a wrong password.
_DUMMY_HASH = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + _b64(bytes(KEY_BYTES))


# --- users ------------------------------------------------------------------------------------


def parse_users(raw: str) -> dict[str, User]:
    """``name:role:hash`` entries, comma- or newline-separated; one sentence on a bad entry."""
    users: dict[str, User] = {}
    for index, entry in enumerate((e.strip() for e in re.split(r"[,\n]", raw)), start=1):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) != 3:
            raise ConfigError(
                f"{USERS_VARIABLE} entry {index} must be name:role:hash "
                "(the hash from `worker dashboard hash-password`)"
            )
        name, role, password_hash = (p.strip() for p in parts)
        if not _NAME.match(name):
            raise ConfigError(
                f"{USERS_VARIABLE} entry {index} has an invalid name; expected letters, digits, "
                "'.', '_', '@' or '-' (at most 64)"
            )
        if role not in {r.value for r in Role}:
            raise ConfigError(
                f"{USERS_VARIABLE} entry {index} ({name}) has role {role!r}; "
                "expected viewer or admin"
            )
        try:
            _parse_hash(password_hash)
        except ValueError:
            raise ConfigError(
                f"{USERS_VARIABLE} entry {index} ({name}) does not hold a password hash from "
                "`worker dashboard hash-password`"
            ) from None
        if name in users:
            raise ConfigError(f"{USERS_VARIABLE} names the user {name!r} twice")
        users[name] = User(name, Role(role), password_hash)
    return users


class _UsersSetting(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )
    dashboard_users: SecretStr = SecretStr("")


def load_users(env_file: str | None = ".env") -> dict[str, User]:
    """The users of ``DASHBOARD_USERS``: the environment, then ``.env``, then the credential."""
    raw = _UsersSetting(_env_file=env_file).dashboard_users.get_secret_value()  # type: ignore[call-arg]
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not raw.strip() and directory:
        for candidate in (USERS_VARIABLE, USERS_VARIABLE.lower(), "dashboard-users"):
            path = Path(directory) / candidate
            if path.is_file():
                raw = path.read_text(encoding="utf-8")
                break
    return parse_users(raw)


def authenticate(users: dict[str, User], name: str, password: str) -> User | None:
    """The user if ``password`` is theirs; as slow for an unknown name as for a wrong password."""
    user = users.get(name)
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    return user if ok and user is not None else None


# --- sessions ---------------------------------------------------------------------------------


@dataclass
class Session:
    token: str
    user: User
    csrf: str
    expires: float
    flash: list[str] = field(default_factory=list)  # messages for the next page shown


class Sessions:
    """Live sessions by token, in this process. Thread-safe."""

    def __init__(self, *, ttl: float = SESSION_SECONDS, clock: object = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def create(self, user: User) -> Session:
        session = Session(
            token=secrets.token_urlsafe(32),
            user=user,
            csrf=secrets.token_urlsafe(32),
            expires=self._now() + self.ttl,
        )
        with self._lock:
            if len(self._by_token) >= MAX_SESSIONS:
                oldest = min(self._by_token.values(), key=lambda s: s.expires)
                del self._by_token[oldest.token]
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its expiry renewed), or None."""
        if not token:
            return None
        now = self._now()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if session.expires <= now:
                del self._by_token[token]
                return None
            session.expires = now + self.ttl
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)
