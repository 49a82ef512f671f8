"""Turn a product's title, description and photo into one prompt for the image-to-video model.

With ``OPENAI_VISION`` on (the default) the photo goes with the text as an image input
(``{"type": "image_url", ...}``, ``detail: low``), so the prompt can name the product's real
colours, materials and shape; a refusal then names the photo too. An image OpenAI cannot fetch
or read is ``code="image_unreadable"``: the prompt step writes the prompt from the text alone.

The chat completion goes through the official ``openai`` SDK with its retries off
(``max_retries=0``): the SDK would otherwise retry 429 and 5xx twice on its own, quota errors
included, behind the pipeline's back. Every failure is classified here, once, into a
:class:`~worker.errors.ErrorClass`; refusals, which the SDK does not raise, are detected here too.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import openai

from jobs.video.settings import video_settings
from worker import http as provider_http
from worker.errors import ErrorClass, ProviderError

if TYPE_CHECKING:
    from worker.config import ApiKey, Settings

__all__ = ["IMAGE_UNREADABLE", "PROVIDER", "SYSTEM_PROMPT", "PromptGenerator"]

#: The instructions given to the model. ``{max_chars}`` is filled from the generator's limit.
SYSTEM_PROMPT = (
    "You write prompts for an image-to-video AI model. The user gives you a product's title and "
    "description, and often its photo; the model also receives that photo. When you see the "
    "photo, name the product's real colours, materials and shape. Write ONE prompt, in English, "
    "for a short, realistic product video that shows the product from the photo as it is: keep "
    "its shape, colours, materials and proportions. Describe the scene, one smooth camera motion "
    "(for example a slow orbit, a push-in or a gentle pan), the lighting and the mood. Do not ask "
    "for any text, captions, logos, watermarks, subtitles or on-screen words, and do not add "
    "people or other products unless the description asks for them. Answer with the prompt "
    "only: no title, no quotes, no lists, no explanations. Stay under {max_chars} characters."
)

#: The provider name carried by every :class:`ProviderError` raised here.
PROVIDER = "openai"

log = logging.getLogger(__name__)

_USER_REFUSED = (
    "The product description was refused by the AI service as not allowed. "
    "Please change the title or description."
)

_USER_REFUSED_PHOTO = (
    "The product photo or description was refused by the AI service as not allowed. "
    "Please change the photo, title or description."
)
#: OpenAI's 400 codes for an image input it could not fetch or decode.
_IMAGE_CODES = frozenset(
    {"invalid_image_url", "invalid_image", "image_parse_error", "invalid_image_format"}
)
#: The code of a :class:`ProviderError` for such an image (the caller may go on without it).
IMAGE_UNREADABLE = "image_unreadable"

_REFUSAL_CODES = frozenset({"invalid_prompt", "content_policy_violation"})
_BILLING_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)

_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d"}


def _first_choice(completion: object) -> dict[str, Any] | None:
    """The first choice of a chat completion's JSON, or None if the body has none."""
    if not isinstance(completion, dict):
        return None  # e.g. the text of a 200 that was not JSON
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def clean_prompt(text: str, max_chars: int) -> str:
    """Collapse whitespace, drop wrapping quotes, and cut at a word boundary to ``max_chars``."""
    text = " ".join(text.split())
    closing = _QUOTES.get(text[:1])
    if closing and len(text) >= 2 and text[-1] == closing and closing not in text[1:-1]:
        text = text[1:-1].strip()  # the model quoted its whole answer
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > 0 else text[:max_chars]
    return cut.rstrip(" ,;:-")


def _error_field(exc: openai.APIStatusError, field: str) -> str | None:
    """``code`` or ``type`` of an API error, from the SDK attribute or the body as a fallback."""
    value = getattr(exc, field, None)
    if value is None and isinstance(exc.body, dict):
        value = exc.body.get(field)
    return str(value) if value not in (None, "") else None


class PromptGenerator:
    """Generates video prompts with one cached SDK client per key, shared by all threads.

    The SDK client holds a connection pool; building one per call would leak sockets and
    handshakes, so each key gets one, created under a lock on first use.
    """

    def __init__(self, base_url: str, *, model: str, timeout: float, max_chars: int = 1500) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_chars = max_chars
        self.timeout = openai.Timeout(
            connect=min(timeout, 10.0), read=timeout, write=timeout, pool=timeout
        )
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[str, openai.OpenAI]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptGenerator:
        """A generator configured from ``OPENAI_*`` settings."""
        s = video_settings(settings)
        return cls(s.openai_base_url, model=s.openai_model, timeout=s.openai_timeout)

    def __repr__(self) -> str:
        return f"PromptGenerator(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        """Close every cached SDK client."""
        with self._lock:
            clients, self._clients = self._clients, {}
        for _, client in clients.values():
            client.close()

    def _client(self, key: ApiKey) -> openai.OpenAI:
        secret = key.secret.get_secret_value()
        with self._lock:
            cached = self._clients.get(key.name)
            if cached is not None and cached[0] == secret:
                return cached[1]
            client = openai.OpenAI(
                api_key=secret,
                base_url=self.base_url,
                max_retries=0,  # the pipeline owns the one retry loop
                timeout=self.timeout,
            )
            # A changed secret replaces the old client; it is not closed here because another
            # thread may still be using it (garbage collection closes it).
            self._clients[key.name] = (secret, client)
        return client

    def system_prompt(self, max_chars: int | None = None) -> str:
        """:data:`SYSTEM_PROMPT` with this limit (``replace``, so other braces are harmless)."""
        return SYSTEM_PROMPT.replace("{max_chars}", str(self._limit(max_chars)))

    def _limit(self, max_chars: int | None) -> int:
        return self.max_chars if max_chars is None else max(1, min(self.max_chars, max_chars))

    def generate(
        self,
        key: ApiKey,
        *,
        title: str,
        description: str | None,
        max_chars: int | None = None,
        image_url: str | None = None,
    ) -> str:
        """One chat completion: the prompt for the video model, at most ``max_chars`` long
        (the video models' smallest prompt cap; never more than the generator's own limit).
        ``image_url``: the product photo, sent as an image input with the text."""
        limit = self._limit(max_chars)
        body = {
            "model": self.model,
            "messages": self._messages(limit, title, description, image_url),
        }
        try:
            # The SDK's low-level ``post`` with ``cast_to=object``: the same request, headers,
            # auth and typed errors as ``chat.completions.create``, without checking our dict
            # against the SDK's TypedDicts or building its pydantic models (together about a
            # tenth of a worker's CPU). The few fields we read are checked below.
            completion = self._client(key).post("/chat/completions", cast_to=object, body=body)
        except openai.APIStatusError as exc:
            # Not chained: the SDK's text holds the provider's message, which may echo the key;
            # ours carries the same facts, redacted.
            raise self._classify(key, exc, image=bool(image_url)) from None
        except openai.APITimeoutError as exc:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                "chat completion timed out",
                provider=PROVIDER,
                key_name=key.name,
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"chat completion: connection error: {exc.__cause__ or exc}",
                provider=PROVIDER,
                key_name=key.name,
            ) from exc
        except openai.APIError as exc:  # e.g. a body that is not JSON
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"chat completion: {type(exc).__name__}: {exc}",
                provider=PROVIDER,
                key_name=key.name,
            ) from exc
        except openai.OpenAIError as exc:  # the SDK refused our own arguments: our bug
            raise ProviderError(
                ErrorClass.INTERNAL,
                f"chat completion: {type(exc).__name__}: {exc}",
                provider=PROVIDER,
                key_name=key.name,
            ) from exc
        except ValueError as exc:  # a JSON content type whose body is not JSON
            raise self._temporary(key, f"malformed response: {exc}") from exc

        choice = _first_choice(completion)
        if choice is None:
            raise self._temporary(key, "malformed response: no choices")
        message = choice.get("message")
        if not isinstance(message, dict):
            raise self._temporary(key, "malformed response: no message")
        refusal = message.get("refusal")
        if refusal:
            raise self._refused(key, f"refusal: {refusal}", image=bool(image_url))
        if choice.get("finish_reason") == "content_filter":
            raise self._refused(key, "finish_reason content_filter", image=bool(image_url))
        content = message.get("content")
        if not isinstance(content, str):
            raise self._temporary(key, "malformed response: no message content")
        prompt = clean_prompt(content, limit)
        if not prompt:
            raise self._temporary(key, "empty prompt")
        log.debug("prompt of %d characters generated with key %s", len(prompt), key.name)
        return prompt

    def _messages(
        self, limit: int, title: str, description: str | None, image_url: str | None
    ) -> list[dict[str, Any]]:
        """The system prompt, and the product as text (with the photo as an image input)."""
        product = f"Product title: {title.strip()}"
        if description and description.strip():
            product += f"\nProduct description: {description.strip()}"
        content: Any = product
        if image_url:
            content = [
                {"type": "text", "text": product},
                {"type": "image_url", "image_url": {"url": image_url, "detail": "low"}},
            ]
        return [
            {"role": "system", "content": self.system_prompt(limit)},
            {"role": "user", "content": content},
        ]

    # -- classification --------------------------------------------------------------------

    def _classify(
        self, key: ApiKey, exc: openai.APIStatusError, *, image: bool = False
    ) -> ProviderError:
        """Map an HTTP error of the SDK to its class.

        Two 429s differ completely: ``rate_limit_exceeded`` is a wait, the quota family is
        money and no wait will fix it, so the key must be quarantined (BILLING). With a photo
        sent (``image``), a refusal names the photo, and a photo OpenAI could not fetch or read
        is :data:`IMAGE_UNREADABLE`.
        """
        status = exc.status_code
        code = _error_field(exc, "code")
        kind = _error_field(exc, "type")
        retry_after: float | None = None
        user: str | None = None
        if status == 400 and (code in _REFUSAL_CODES or kind in _REFUSAL_CODES):
            cls, user = ErrorClass.USER_ERROR, _USER_REFUSED_PHOTO if image else _USER_REFUSED
        elif status == 400 and image and code in _IMAGE_CODES:
            cls, code = ErrorClass.USER_ERROR, IMAGE_UNREADABLE
        elif status == 429 and (code in _BILLING_CODES or kind in _BILLING_CODES):
            cls = ErrorClass.BILLING
        elif status == 429:
            cls = ErrorClass.RATE_LIMIT
            retry_after = provider_http.retry_after(exc.response.headers)
        elif status in (401, 403):
            cls = ErrorClass.AUTH
        elif status == 404:
            # model_not_found, or a base URL that serves no such endpoint: configuration, and
            # no retry will fix it.
            cls = ErrorClass.UNAVAILABLE
        elif status in (408, 409) or status >= 500:
            cls = ErrorClass.TEMPORARY
        else:
            cls = ErrorClass.INTERNAL  # 400, 422 and the rest: our request was wrong
        text = f"chat completion: HTTP {status}"
        if kind or code:
            text += f" {kind or '-'}/{code or '-'}"
        text += f": {exc.message[:500]}"
        return ProviderError(
            cls,
            text,
            provider=PROVIDER,
            status=status,
            code=code or kind,
            user_message=user,
            retry_after=retry_after,
            key_name=key.name,
        )

    def _refused(self, key: ApiKey, detail: str, *, image: bool = False) -> ProviderError:
        return ProviderError(
            ErrorClass.USER_ERROR,
            f"chat completion refused: {detail[:500]}",
            provider=PROVIDER,
            status=200,
            code="refusal",
            user_message=_USER_REFUSED_PHOTO if image else _USER_REFUSED,
            key_name=key.name,
        )

    def _temporary(self, key: ApiKey, detail: str) -> ProviderError:
        return ProviderError(
            ErrorClass.TEMPORARY,
            f"chat completion: {detail}",
            provider=PROVIDER,
            status=200,
            key_name=key.name,
        )
