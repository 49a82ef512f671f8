"""What the bot itself says, in English, Russian and Ukrainian (the worker's own messages, the
videos' captions and the summary, come from the worker in the same language).

The language is the user's Telegram ``language_code`` (``ru``, ``uk``, ``en-US``): its first part
if the bot speaks it, else English. Texts are plain (no parse mode), so a title is shown as typed.
"""

from __future__ import annotations

import math

DEFAULT = "en"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "start": (
            "Hi! You have {credits}.\n"
            "Send me a photo of your product and I will make short videos of it."
        ),
        "welcome": "Welcome! Here are {credits} to try it out.",
        "ask_title": "Nice photo! Now send me the product's name.",
        "ask_description": (
            "Add a short description (what it is made of, what it is for), or press Skip."
        ),
        "skip": "Skip",
        "ask_count": "How many videos of “{title}”? One costs {price}.",
        "ask_count_tiers": "How many videos of “{title}”?",
        "ask_tier": "Which quality?",
        "tier": "{name}: {price} per video",
        "submitted_one": "Got it! Your video of “{title}” is on its way.",
        "submitted_many": "Got it! {n} videos of “{title}” are on their way.",
        "again": "Making another video of this product.",
        "on_its_way": "On its way!",
        "eta_soon": " Expected in under a minute.",
        "eta": " Expected in about {minutes}.",
        "photo_first": "Send me a photo of your product to start.",
        "title_needed": "Please send the product's name as text.",
        "description_needed": "Please send the description as text, or press Skip.",
        "stale": "This button is no longer active.",
        "insufficient": "Not enough credits: this needs {needed}, you have {available}.",
        "not_yours": "This video is not available to you.",
        "conflict": "That cannot be done with this video right now.",
        "invalid": "That did not work: {what}. Please try again.",
        "invalid.title": "the name is empty or too long",
        "invalid.description": "the description is too long",
        "invalid.photo_file_id": "this photo cannot be used",
        "invalid.count": "that number of videos is not available",
        "invalid.tier": "that quality is not available",
        "invalid.other": "the request was not accepted",
        "busy": (
            "We are very busy right now: a new video would take about {minutes}. "
            "Please try again later."
        ),
        "error": "Something went wrong on our side. Please try again in a minute.",
        "credit_one": "{n} credit",
        "credit_many": "{n} credits",
        "minute_one": "{n} minute",
        "minute_many": "{n} minutes",
    },
    "ru": {
        "start": (
            "Здравствуйте! У вас {credits}.\n"
            "Пришлите фото вашего товара, и я сделаю по нему короткие видео."
        ),
        "welcome": "Добро пожаловать! Вот {credits}, чтобы попробовать.",
        "ask_title": "Отличное фото! Теперь пришлите название товара.",
        "ask_description": (
            "Добавьте короткое описание (из чего сделан, для чего нужен) или нажмите «Пропустить»."
        ),
        "skip": "Пропустить",
        "ask_count": "Сколько видео «{title}» сделать? Одно стоит {price}.",
        "ask_count_tiers": "Сколько видео «{title}» сделать?",
        "ask_tier": "Какое качество?",
        "tier": "{name}: {price} за видео",
        "submitted_one": "Принято! Ваше видео «{title}» уже в работе.",
        "submitted_many": "Принято! Видео «{title}» ({n} шт.) уже в работе.",
        "again": "Делаю ещё одно видео с этим товаром.",
        "on_its_way": "Уже в работе!",
        "eta_soon": " Будет готово меньше чем через минуту.",
        "eta": " Будет готово примерно через {minutes}.",
        "photo_first": "Чтобы начать, пришлите фото вашего товара.",
        "title_needed": "Пожалуйста, пришлите название товара текстом.",
        "description_needed": "Пожалуйста, пришлите описание текстом или нажмите «Пропустить».",
        "stale": "Эта кнопка больше не действует.",
        "insufficient": "Недостаточно кредитов: нужно {needed}, у вас {available}.",
        "not_yours": "Это видео вам недоступно.",
        "conflict": "Сейчас с этим видео так сделать нельзя.",
        "invalid": "Не получилось: {what}. Попробуйте ещё раз.",
        "invalid.title": "название пустое или слишком длинное",
        "invalid.description": "описание слишком длинное",
        "invalid.photo_file_id": "это фото нельзя использовать",
        "invalid.count": "такое количество видео недоступно",
        "invalid.tier": "такое качество недоступно",
        "invalid.other": "запрос не принят",
        "busy": (
            "Сейчас очень много заказов: новое видео заняло бы примерно {minutes}. "
            "Пожалуйста, попробуйте позже."
        ),
        "error": "У нас что-то пошло не так. Пожалуйста, попробуйте через минуту.",
        "credit_one": "{n} кредит",
        "credit_few": "{n} кредита",
        "credit_many": "{n} кредитов",
        "minute_one": "{n} минуту",
        "minute_few": "{n} минуты",
        "minute_many": "{n} минут",
    },
    "uk": {
        "start": (
            "Вітаю! У вас {credits}.\n"
            "Надішліть фото вашого товару, і я зроблю з нього короткі відео."
        ),
        "welcome": "Ласкаво просимо! Ось {credits}, щоб спробувати.",
        "ask_title": "Чудове фото! Тепер надішліть назву товару.",
        "ask_description": (
            "Додайте короткий опис (з чого зроблений, для чого потрібен) або натисніть "
            "«Пропустити»."
        ),
        "skip": "Пропустити",
        "ask_count": "Скільки відео «{title}» зробити? Одне коштує {price}.",
        "ask_count_tiers": "Скільки відео «{title}» зробити?",
        "ask_tier": "Яка якість?",
        "tier": "{name}: {price} за відео",
        "submitted_one": "Прийнято! Ваше відео «{title}» вже в роботі.",
        "submitted_many": "Прийнято! Відео «{title}» ({n} шт.) вже в роботі.",
        "again": "Роблю ще одне відео з цим товаром.",
        "on_its_way": "Вже в роботі!",
        "eta_soon": " Буде готово менш ніж за хвилину.",
        "eta": " Буде готово приблизно за {minutes}.",
        "photo_first": "Щоб почати, надішліть фото вашого товару.",
        "title_needed": "Будь ласка, надішліть назву товару текстом.",
        "description_needed": "Будь ласка, надішліть опис текстом або натисніть «Пропустити».",
        "stale": "Ця кнопка більше не діє.",
        "insufficient": "Недостатньо кредитів: потрібно {needed}, у вас {available}.",
        "not_yours": "Це відео вам недоступне.",
        "conflict": "Зараз із цим відео так зробити не можна.",
        "invalid": "Не вийшло: {what}. Спробуйте ще раз.",
        "invalid.title": "назва порожня або задовга",
        "invalid.description": "опис задовгий",
        "invalid.photo_file_id": "це фото не можна використати",
        "invalid.count": "така кількість відео недоступна",
        "invalid.tier": "така якість недоступна",
        "invalid.other": "запит не прийнято",
        "busy": (
            "Зараз дуже багато замовлень: нове відео зайняло б приблизно {minutes}. "
            "Будь ласка, спробуйте пізніше."
        ),
        "error": "У нас щось пішло не так. Будь ласка, спробуйте за хвилину.",
        "credit_one": "{n} кредит",
        "credit_few": "{n} кредити",
        "credit_many": "{n} кредитів",
        "minute_one": "{n} хвилину",
        "minute_few": "{n} хвилини",
        "minute_many": "{n} хвилин",
    },
}


def language(code: str | None) -> str:
    """The bot's language for a Telegram ``language_code`` (``pt-BR`` → ``en``)."""
    base = (code or "").split("-", 1)[0].strip().lower()
    return base if base in TEXTS else DEFAULT


def text(code: str | None, key: str, **values: object) -> str:
    return TEXTS[language(code)][key].format(**values)


def _plural(lang: str, n: int) -> str:
    """CLDR's cardinal categories: English one/other, Russian and Ukrainian one/few/many."""
    if lang == "en":
        return "one" if n == 1 else "many"
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


def counted(code: str | None, noun: str, n: int) -> str:
    """``3 credits``, ``3 кредита``, ``5 хвилин`` (``noun``: ``credit`` or ``minute``)."""
    lang = language(code)
    return TEXTS[lang][f"{noun}_{_plural(lang, n)}"].format(n=n)


def eta(code: str | None, seconds: float | None) -> str:
    """A sentence (with its leading space) saying when the videos should be ready; empty when
    the estimate is unknown."""
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return ""
    if seconds < 60:
        return text(code, "eta_soon")
    return text(code, "eta", minutes=counted(code, "minute", math.ceil(seconds / 60)))
