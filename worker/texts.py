"""What users read, in their language: catalogues of texts, the fallback, the operator's overrides.

Each job kind declares its texts in one :class:`Catalogue` (``jobs/<kind>/texts.py``): for every
language it speaks, ``key → template``, the templates written with ``{placeholders}``. English
is the source: every key exists in English, and a translation may use only the placeholders its
English template uses. The framework's own user-facing words (the reasons a job failed that
``worker/`` gives, e.g. "This took too long to make") are the :data:`FRAMEWORK` catalogue.

A job stores its user's language (Telegram's ``language_code``, an IETF tag such as ``ru``,
``uk``, ``en-US``) in its payload. A text is looked up in that language, then its primary
subtag (``en-US`` → ``en``), then ``DEFAULT_LANGUAGE``, then English, the first that has the
key, the operator's overrides first at each step.

Overrides: ``MESSAGES_FILE`` names a TOML file, one table per language and one dotted key per
text, ``<catalogue>.<key>`` (``[ru]`` then ``<kind>.caption = "Готово: «{title}»."``).
It is read and checked when the settings load (:func:`overrides`): an unknown catalogue or key,
a malformed language tag or a placeholder the English text does not have stops the program with
one sentence. An override may also add a language no catalogue speaks: its missing keys fall
back as above.

Reasons. A :class:`~worker.errors.ProviderError` carries ``user_message`` in English (it is
stored on the job for operators too). A catalogue's keys ``reason.*`` hold those sentences; a
reason is translated by finding its English text (:meth:`Catalogue.reason`), as gettext does
with its message ids. A sentence no catalogue knows is shown as it is.

Parse mode: ``worker.telegram`` sends every text and caption without ``parse_mode``, so Telegram
shows it as plain text: a user's title such as ``<b>*x*</b>`` is shown as typed and needs no
escaping. A caller that ever sends a parse mode must escape user text for it first.
"""

from __future__ import annotations

import logging
import re
import string
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from worker.errors import DEFAULT_USER_MESSAGES, ConfigError, ErrorClass, InvalidRequest

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = [
    "DEFAULT_LANGUAGE",
    "FRAMEWORK",
    "Catalogue",
    "Overrides",
    "candidates",
    "language_of",
    "overrides",
    "plural",
]

DEFAULT_LANGUAGE = "en"
#: A short IETF language tag as Telegram sends it: ``ru``, ``uk``, ``en-US``, ``pt-br``.
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}")
MAX_TAG_CHARS = 35
log = logging.getLogger(__name__)
_KEY = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")

PluralForm = Literal["one", "few", "many"]


def language_of(value: Any, field: str = "language") -> str | None:
    """``value`` as a stored language tag (lower case, ``-`` separated), ``None`` when absent,
    or :class:`InvalidRequest` when it is not a short language tag. An unknown but well-formed
    tag is kept: the texts fall back to ``DEFAULT_LANGUAGE`` for it."""
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or len(value) > MAX_TAG_CHARS
        or not LANGUAGE_TAG.fullmatch(value)
    ):
        raise InvalidRequest(field, "must be a language tag such as en, ru, uk or en-US")
    return value.replace("_", "-").lower()


def candidates(language: str | None, default: str = DEFAULT_LANGUAGE) -> list[str]:
    """Languages to look a text up in, in order: the tag, its primary subtag, the default,
    English."""
    found: list[str] = []
    tags = [language.lower()] if language else []
    if language and "-" in language:
        tags.append(language.split("-", 1)[0].lower())
    for tag in (*tags, default.lower(), DEFAULT_LANGUAGE):
        if tag not in found:
            found.append(tag)
    return found


def plural(language: str, n: int) -> PluralForm:
    """The plural form of ``n`` (CLDR): Russian and Ukrainian have one (1, 21), few (2-4, 22)
    and many (0, 5-20, 11-14); English and the rest here, one and many."""
    primary = language.split("-", 1)[0]
    if primary in ("ru", "uk", "be"):
        if n % 10 == 1 and n % 100 != 11:
            return "one"
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return "few"
        return "many"
    return "one" if n == 1 else "many"


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a template uses (``{{`` is a literal brace)."""
    names = set()
    for _literal, name, _spec, _conv in string.Formatter().parse(template):
        if name is not None:
            names.add(name)
    return names


def english_key(english: Mapping[str, str], key: str) -> str | None:
    """The English text a key translates: itself, or for a ``<stem>_few`` plural form (which
    English does not have) ``<stem>_many``; ``None`` for a key English does not know."""
    if key in english:
        return key
    if key.endswith("_few") and f"{key[:-4]}_many" in english:
        return f"{key[:-4]}_many"
    return None


@dataclass(frozen=True)
class Overrides:
    """The operator's texts from ``MESSAGES_FILE``: language → ``catalogue.key`` → template."""

    path: Path | None
    texts: Mapping[str, Mapping[str, str]]

    def get(self, language: str, full_key: str) -> str | None:
        return self.texts.get(language, {}).get(full_key)


NO_OVERRIDES = Overrides(None, {})


class Catalogue:
    """One kind's texts (or the framework's), every language it speaks.

    ``name`` is how an override names it (the kind's name); ``messages`` maps a language to its
    ``key → template``. Checked when built: English has every key, the others only English's
    keys with only English's placeholders; a mistake is a bug, so it raises ``ValueError``.
    """

    def __init__(self, name: str, messages: Mapping[str, Mapping[str, str]]) -> None:
        if DEFAULT_LANGUAGE not in messages:
            raise ValueError(f"catalogue {name}: no English texts")
        english = messages[DEFAULT_LANGUAGE]
        for key in english:
            if not _KEY.fullmatch(key):
                raise ValueError(f"catalogue {name}: bad key {key!r}")
        for language, texts in messages.items():
            for key, template in texts.items():
                source = english_key(english, key)
                if source is None:
                    raise ValueError(f"catalogue {name}: {language} has unknown key {key!r}")
                extra = placeholders(template) - placeholders(english[source])
                if extra:
                    raise ValueError(
                        f"catalogue {name}: {language}.{key} uses unknown {sorted(extra)}"
                    )
        self.name = name
        self.messages = {lang: dict(texts) for lang, texts in messages.items()}
        self._reasons = {text: key for key, text in english.items() if key.startswith("reason.")}

    @property
    def languages(self) -> list[str]:
        return sorted(self.messages)

    @property
    def keys(self) -> list[str]:
        """Every key, the plural forms only some languages have (``_few``) included."""
        found = dict.fromkeys(self.messages[DEFAULT_LANGUAGE])
        for texts in self.messages.values():
            found.update(dict.fromkeys(texts))
        return list(found)

    def english(self, key: str) -> str | None:
        """The English template ``key`` translates (``None``: no such key)."""
        source = english_key(self.messages[DEFAULT_LANGUAGE], key)
        return None if source is None else self.messages[DEFAULT_LANGUAGE][source]

    def language_for(self, settings: Settings | None, language: str | None) -> str:
        """The language this catalogue answers ``language`` in (for what is written outside
        it, such as dates and numbers): the first candidate it, or an override, speaks."""
        extra = overrides(settings, strict=False) if settings is not None else NO_OVERRIDES
        default = settings.default_language if settings is not None else DEFAULT_LANGUAGE
        for tag in candidates(language, default):
            if tag in self.messages or tag in extra.texts:
                return tag
        return DEFAULT_LANGUAGE

    def template(self, settings: Settings | None, language: str | None, key: str) -> str:
        """The template of ``key`` in the best language for ``language`` (overrides first)."""
        fallback = self.english(key)
        if fallback is None:
            raise KeyError(f"catalogue {self.name} has no text {key!r}")
        extra = overrides(settings, strict=False) if settings is not None else NO_OVERRIDES
        default = settings.default_language if settings is not None else DEFAULT_LANGUAGE
        full_key = f"{self.name}.{key}"
        for tag in candidates(language, default):
            found = extra.get(tag, full_key) or self.messages.get(tag, {}).get(key)
            if found is not None:
                return found
        return fallback  # a "_few" form English does not have: its "_many"

    def text(self, settings: Settings | None, language: str | None, key: str, **values: Any) -> str:
        """``key`` in the user's language, its placeholders filled with ``values``."""
        return self.template(settings, language, key).format(**values)

    def count(
        self, settings: Settings | None, language: str | None, key: str, n: int, **values: Any
    ) -> str:
        """``key_one``, ``key_few`` or ``key_many`` for ``n`` in the language the text is
        found in (``n`` is passed as a placeholder too)."""
        default = settings.default_language if settings is not None else DEFAULT_LANGUAGE
        extra = overrides(settings, strict=False) if settings is not None else NO_OVERRIDES
        for tag in candidates(language, default):
            form = f"{key}_{plural(tag, n)}"
            own = self.messages.get(tag, {})
            if extra.get(tag, f"{self.name}.{form}") is not None or form in own:
                return self.text(settings, tag, form, n=n, **values)
        return self.text(settings, DEFAULT_LANGUAGE, f"{key}_{plural('en', n)}", n=n, **values)

    def failure(
        self,
        settings: Settings | None,
        language: str | None,
        user_message: str,
        price: int,
        **values: Any,
    ) -> str:
        """The catalogue's ``failure`` text: ``reason`` is ``user_message`` in the user's
        language, ``refund`` the ``refund_one|few|many`` sentence ("" when nothing was paid);
        ``values`` name the job's subject (its title, its file...)."""
        return self.text(
            settings,
            language,
            "failure",
            reason=self.reason(settings, language, user_message),
            refund=self.refund_note(settings, language, price),
            **values,
        )

    def refund_note(self, settings: Settings | None, language: str | None, price: int) -> str:
        """The sentence saying ``price`` credits came back ("" when the job cost nothing)."""
        return self.count(settings, language, "refund", price) if price else ""

    def reason_key(self, english: str) -> str | None:
        """The key of a reason given by its English text (``None``: not this catalogue's)."""
        return self._reasons.get(english)

    def reason(self, settings: Settings | None, language: str | None, english: str) -> str:
        """A failure's reason (``ProviderError.user_message``) in the user's language: this
        catalogue's, then the framework's; a sentence neither knows is returned as it is."""
        for catalogue in (self, FRAMEWORK):
            key = catalogue.reason_key(english)
            if key is not None:
                return catalogue.text(settings, language, key)
        return english


# --- the framework's own words ------------------------------------------------------------------

_EN_REASONS = {
    "reason.user_error": DEFAULT_USER_MESSAGES[ErrorClass.USER_ERROR],
    "reason.temporary": DEFAULT_USER_MESSAGES[ErrorClass.TEMPORARY],
    "reason.rate_limit": DEFAULT_USER_MESSAGES[ErrorClass.RATE_LIMIT],
    "reason.billing": DEFAULT_USER_MESSAGES[ErrorClass.BILLING],
    "reason.unavailable": DEFAULT_USER_MESSAGES[ErrorClass.UNAVAILABLE],
    "reason.internal": DEFAULT_USER_MESSAGES[ErrorClass.INTERNAL],
    # worker/storage.py, worker/maintenance.py, worker/failures.py, worker/lifecycle.py
    "reason.result_fetch": "The provider's result could not be fetched.",
    "reason.poison": "Something went wrong on our side while making this.",
    "reason.no_service": "This service is not available right now.",
    "reason.deadline": "This took too long to make, so we stopped.",
}
if DEFAULT_USER_MESSAGES[ErrorClass.AUTH] != _EN_REASONS["reason.billing"]:  # pragma: no cover
    _EN_REASONS["reason.auth"] = DEFAULT_USER_MESSAGES[ErrorClass.AUTH]

FRAMEWORK = Catalogue(
    "worker",
    {
        "en": _EN_REASONS,
        "ru": {
            "reason.user_error": "Не получилось сделать это по вашему запросу.",
            "reason.temporary": (
                "У сервиса, которым мы пользуемся, возникла проблема, и мы не смогли закончить."
            ),
            "reason.rate_limit": "Сервис, которым мы пользуемся, сейчас сильно перегружен.",
            "reason.billing": "Сервис, которым мы пользуемся, временно недоступен.",
            "reason.unavailable": "Этот сервис временно недоступен.",
            "reason.internal": "Что-то пошло не так с нашей стороны.",
            "reason.result_fetch": "Не удалось получить готовый результат от сервиса.",
            "reason.poison": "Что-то пошло не так с нашей стороны, пока мы это делали.",
            "reason.no_service": "Этот сервис сейчас недоступен.",
            "reason.deadline": "Это заняло слишком много времени, поэтому мы остановились.",
        },
        "uk": {
            "reason.user_error": "Не вдалося зробити це за вашим запитом.",
            "reason.temporary": (
                "У сервісу, яким ми користуємося, виникла проблема, і ми не змогли завершити."
            ),
            "reason.rate_limit": "Сервіс, яким ми користуємося, зараз дуже перевантажений.",
            "reason.billing": "Сервіс, яким ми користуємося, тимчасово недоступний.",
            "reason.unavailable": "Цей сервіс тимчасово недоступний.",
            "reason.internal": "Щось пішло не так з нашого боку.",
            "reason.result_fetch": "Не вдалося отримати готовий результат від сервісу.",
            "reason.poison": "Щось пішло не так з нашого боку, поки ми це робили.",
            "reason.no_service": "Цей сервіс зараз недоступний.",
            "reason.deadline": "Це зайняло забагато часу, тож ми зупинилися.",
        },
    },
)


def catalogues() -> list[Catalogue]:
    """The framework's catalogue and every kind's."""
    from worker.kinds import all_kinds

    found = [FRAMEWORK]
    for kind in all_kinds():
        if kind.texts.catalogue is not None:
            found.append(kind.texts.catalogue)
    return found


# --- MESSAGES_FILE ------------------------------------------------------------------------------

_lock = threading.Lock()
_loaded: dict[tuple[Path, int, int], Overrides] = {}
_last_good: dict[Path, Overrides] = {}


def overrides(settings: Settings, *, strict: bool = True) -> Overrides:
    """The overrides ``MESSAGES_FILE`` names (none when unset), read once per file version and
    checked against every catalogue; :class:`ConfigError` (one sentence) when it is wrong.

    At start (``load_settings``) a wrong file stops the program. Later (``strict=False``, when
    a text is looked up) a file edited into a wrong one, or removed, is logged and the last good
    version stays in use: a user's message is never lost to an operator's typo."""
    path = settings.messages_file
    if path is None:
        return NO_OVERRIDES
    try:
        return _read(Path(path))
    except ConfigError as err:
        if strict:
            raise
        with _lock:
            good = _last_good.get(Path(path), NO_OVERRIDES)
        log.warning("%s; the texts in use stay as they were", err)
        return good


def _read(path: Path) -> Overrides:
    try:
        stat = path.stat()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"MESSAGES_FILE {path} cannot be read ({why})") from None
    version = (path, stat.st_mtime_ns, stat.st_size)
    with _lock:
        found = _loaded.get(version)
    if found is None:
        found = read_overrides(path, catalogues())
        with _lock:
            _loaded[version] = found
    with _lock:
        _last_good[path] = found
    return found


def read_overrides(path: Path, known: Iterable[Catalogue]) -> Overrides:
    """Parse and check an overrides file against ``known`` catalogues."""
    where = f"MESSAGES_FILE {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"{where} cannot be read ({why})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML ({exc})") from None
    by_name = {c.name: c for c in known}
    texts: dict[str, dict[str, str]] = {}
    for language, table in data.items():
        if not LANGUAGE_TAG.fullmatch(language) or len(language) > MAX_TAG_CHARS:
            raise ConfigError(
                f"{where}: [{language}] is not a language tag such as en, ru, uk or en-US"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {language} must be a table of texts, [{language}]")
        tag = language.replace("_", "-").lower()
        for full_key, template in _flatten(table):
            name, _, key = full_key.partition(".")
            catalogue = by_name.get(name)
            english = catalogue.english(key) if catalogue is not None else None
            if catalogue is None or english is None:
                raise ConfigError(
                    f"{where}: [{language}] {full_key} is not a known text "
                    f"(texts are named catalogue.key, catalogues: {', '.join(sorted(by_name))})"
                )
            if not isinstance(template, str) or not template.strip():
                raise ConfigError(f"{where}: [{language}] {full_key} must be a non-empty string")
            try:
                names = placeholders(template)
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: [{language}] {full_key} is malformed ({exc})"
                ) from None
            extra = names - placeholders(english)
            if extra:
                allowed = ", ".join("{" + n + "}" for n in sorted(placeholders(english)))
                raise ConfigError(
                    f"{where}: [{language}] {full_key} uses "
                    f"{', '.join('{' + n + '}' for n in sorted(extra))}, which it does not have "
                    f"(it has {allowed or 'no placeholders'})"
                )
            texts.setdefault(tag, {})[full_key] = template
    return Overrides(path, texts)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, full + ".")
        else:
            out.append((full, value))
    return out
