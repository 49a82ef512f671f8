"""The fake OpenAI chat completions API.

Errors use the official body ``{"error": {"message", "type", "param", "code"}}`` with the matching
HTTP status, so the official SDK raises the same exception classes it raises against the real
service. The answer to a product description is a short, plausible video prompt, built
deterministically from the last user message so tests can assert on it.

An image input (``{"type": "image_url", "image_url": {"url": ...}}``, or the Responses API's
``{"type": "input_image", "image_url": ...}``) whose URL is a file this simulator serves (KIE's
upload store, ``simulator.kie_upload``) is opened with Pillow and its dominant colour named in
the prompt ("a red product"), so a test can show the prompt saw the photo. An image whose URL
contains ``refuse-image``, or whose bytes contain ``REFUSE-IMAGE``, is refused like a flagged
text. Every request's texts and image URLs are kept: ``GET /_sim/openai/requests``.

Refusals come in all four documented forms (two HTTP 400 codes, ``message.refusal`` and
``finish_reason == "content_filter"``); ``refusal_mode = "cycle"`` rotates through them so a test
suite meets every form without configuring each.
"""

from __future__ import annotations

import asyncio
import collections
import io
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from simulator import kie_upload
from simulator.state import SimState, attached, bearer_token, current_call, get_state

CYCLE = ("http400", "invalid_prompt", "refusal", "content_filter")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."

#: An image refused as a flagged text is: its URL contains the first, its bytes the second.
REFUSE_IMAGE_URL = "refuse-image"
REFUSE_IMAGE_BYTES = b"REFUSE-IMAGE"
#: Colours a product is named by: the nearest of these to most of the photo's pixels.
PALETTE = {
    "red": (200, 30, 30),
    "orange": (240, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 200),
    "purple": (120, 50, 160),
    "pink": (240, 150, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
}

_TITLE_LINE = re.compile(
    r"^\s*(?:product\s+)?(?:title|name|product)\s*[:\-\u2013]\s*(.+?)\s*$", re.I
)


def openai_error(
    request: web.Request,
    status: int,
    message: str,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    current_call(request).code = code or type_
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _authenticate(request: web.Request) -> str | web.Response:
    state = get_state(request)
    token = bearer_token(request)
    current_call(request).key = token
    if token is None:
        return openai_error(
            request,
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
        )
    keys = state.config.openai.keys
    account = keys.get(token)
    if (keys and account is None) or (account is not None and account.revoked):
        return openai_error(
            request,
            401,
            f"Incorrect API key provided: {token[:3]}***{token[-4:]}. You can find your API key "
            "at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if account is not None and account.quota_exhausted:
        return openai_error(
            request,
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            account.quota_code,
        )
    return token


async def _with_faults(
    request: web.Request, model: str, handler: Callable[[], Awaitable[web.Response]]
) -> web.Response:
    state = get_state(request)
    cfg = state.config.openai
    call = current_call(request)
    if state.roll(cfg.rate_timeout):
        call.fault = "timeout"
        response = await handler()
        await asyncio.sleep(cfg.timeout_seconds)
        return response
    if state.roll(cfg.rate_5xx):
        call.fault = "5xx"
        status, message = state.rng.choice(
            (
                (500, "The server had an error while processing your request. Sorry about that!"),
                (503, "The engine is currently overloaded, please try again later"),
            )
        )
        return openai_error(request, status, message, "server_error", None)
    if state.roll(cfg.rate_429):
        call.fault = "429"
        wait = cfg.retry_after_seconds
        return openai_error(
            request,
            429,
            f"Rate limit reached for {model or 'the model'} in organization org-simulator on "
            f"requests per min (RPM): Limit 500, Used 500, Requested 1. "
            f"Please try again in {wait:g}s.",
            "requests",
            "rate_limit_exceeded",
            headers={
                "retry-after": str(max(1, math.ceil(wait))) if wait else "0",
                "retry-after-ms": str(int(wait * 1000)),
            },
        )
    return await handler()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    key = _authenticate(request)
    if isinstance(key, web.Response):
        return key
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return openai_error(
            request,
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        )
    model = body.get("model")
    current_call(request).model = model if isinstance(model, str) else None
    return await _with_faults(
        request, model if isinstance(model, str) else "", lambda: _complete(request, body)
    )


async def _complete(request: web.Request, body: dict[str, Any]) -> web.Response:
    state = get_state(request)
    cfg = state.config.openai
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return openai_error(
            request, 400, "you must provide a model parameter", "invalid_request_error", None
        )
    if cfg.available_models and model not in cfg.available_models:
        return openai_error(
            request,
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(
            request,
            400,
            "[] is too short - 'messages'"
            if messages == []
            else "'messages' is a required property",
            "invalid_request_error",
            None,
            "messages",
        )
    if body.get("stream"):
        return openai_error(
            request,
            400,
            "stream=true is not supported by the simulator",
            "invalid_request_error",
            None,
            "stream",
        )
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    texts = [_text_of(m) for m in users]
    images = [url for m in users for url in image_urls(m)]
    requests_log(state).append(
        {"at": time.time(), "model": model, "texts": texts, "images": images}
    )
    user_text = texts[-1] if texts else ""
    marker = cfg.content_policy_marker.lower()
    flagged = bool(marker) and any(marker in t.lower() for t in texts)
    seen = [_look_at(state, url) for url in images]
    flagged = flagged or any(refused for refused, _ in seen)
    colour = next((c for _, c in seen if c), None)

    finish_reason = "stop"
    content: str | None = video_prompt(user_text, colour)
    refusal: str | None = None
    if flagged:
        mode = cfg.refusal_mode
        if mode == "cycle":
            mode = CYCLE[state.refusal_turn % len(CYCLE)]
            state.refusal_turn += 1
        if mode == "http400":
            return openai_error(
                request,
                400,
                "Your request was rejected as a result of our safety system. Your prompt may "
                "contain text that is not allowed by our safety system.",
                "invalid_request_error",
                "content_policy_violation",
            )
        if mode == "invalid_prompt":
            return openai_error(
                request,
                400,
                "Invalid prompt: your prompt was flagged as potentially violating our usage "
                "policy.",
                "invalid_request_error",
                "invalid_prompt",
                "messages",
            )
        current_call(request).code = mode
        if mode == "refusal":
            content, refusal = None, REFUSAL_TEXT
        else:
            content, finish_reason = None, "content_filter"

    prompt_tokens = sum(_tokens(t) for t in texts) + 8 * len(messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if content is not None and isinstance(limit, int) and 0 < limit < _tokens(content):
        content = content[: limit * 4]
        finish_reason = "length"
    completion_tokens = _tokens(content or refusal or "")
    return web.json_response(
        {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
        },
        headers={"x-request-id": f"req_{secrets.token_hex(12)}"},
    )


def _text_of(message: dict[str, Any]) -> str:
    """The text of a message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def image_urls(message: dict[str, Any]) -> list[str]:
    """The URLs of a message's image inputs (Chat Completions' and the Responses API's)."""
    content = message.get("content")
    urls: list[str] = []
    if not isinstance(content, list):
        return urls
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in ("image_url", "input_image"):
            continue
        ref = part.get("image_url")
        url = ref.get("url") if isinstance(ref, dict) else ref
        if isinstance(url, str) and url:
            urls.append(url)
    return urls


def _look_at(state: SimState, url: str) -> tuple[bool, str | None]:
    """``(refused, dominant colour)`` of an image input; a colour only for a file this
    simulator serves (another URL is not fetched)."""
    if REFUSE_IMAGE_URL in url:
        return True, None
    upload = kie_upload.lookup(state, url)
    if upload is None:
        return False, None
    upload.fetches += 1
    if REFUSE_IMAGE_BYTES in upload.data:
        return True, None
    return False, dominant_colour(upload.data)


def dominant_colour(data: bytes) -> str | None:
    """The :data:`PALETTE` name nearest to most pixels of an image (None: not an image)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            small = image.convert("RGB").resize((16, 16))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    names = collections.Counter(
        _nearest(small.getpixel((x, y))) for x in range(16) for y in range(16)
    )
    return names.most_common(1)[0][0]


def _nearest(pixel: Any) -> str:
    r, g, b = pixel[:3]
    return min(
        PALETTE,
        key=lambda n: (
            (r - PALETTE[n][0]) ** 2 + (g - PALETTE[n][1]) ** 2 + (b - PALETTE[n][2]) ** 2
        ),
    )


def requests_log(state: SimState) -> collections.deque[dict[str, Any]]:
    """The chat completion requests (model, user texts, image URLs) since the last reset."""
    return attached(state, "openai.requests", lambda: collections.deque(maxlen=10_000))


async def admin_requests(request: web.Request) -> web.Response:
    """``GET /_sim/openai/requests``: every chat completion request since the last reset."""
    return web.json_response({"requests": list(requests_log(get_state(request)))})


def _tokens(text: str) -> int:
    """A rough token count (four characters a token), enough for plausible ``usage``."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def product_subject(user_text: str) -> str:
    """What the video is about: a "Title: ..." line if there is one, else the first line."""
    lines = [line.strip() for line in user_text.splitlines() if line.strip()]
    for line in lines:
        match = _TITLE_LINE.match(line)
        if match:
            return _clip(match.group(1))
    return _clip(lines[0]) if lines else "the product"


def _clip(text: str, limit: int = 80) -> str:
    text = text.strip().strip("\"'").rstrip(".!?;:,")
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0]
    return text or "the product"


def video_prompt(user_text: str, colour: str | None = None) -> str:
    """A plausible image-to-video prompt about the product in ``user_text`` (and, when the
    photo was seen, of its dominant ``colour``)."""
    subject = product_subject(user_text)
    if colour:
        subject = f"{subject} (a {colour} product, as in the photo)"
    return (
        f"A slow cinematic push-in on {subject}, resting on a clean studio surface under soft key "
        "light. The camera glides in a gentle arc as reflections travel across its surface and "
        "reveal texture and detail; shallow depth of field, warm highlights, a calm premium mood. "
        f"Ends on a crisp hero shot of {subject} centered in frame."
    )


async def list_models(request: web.Request) -> web.StreamResponse:
    """``GET /v1/models``: the configured models (handy for connectivity checks)."""
    key = _authenticate(request)
    if isinstance(key, web.Response):
        return key
    cfg = get_state(request).config.openai
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
                for m in cfg.available_models
            ],
        }
    )


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/chat/completions", chat_completions, name="openai.chat.completions"),
        web.get("/v1/models", list_models, name="openai.models"),
        web.get("/_sim/openai/requests", admin_requests, name="admin.openai_requests"),
    ]
