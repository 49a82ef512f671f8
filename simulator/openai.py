"""The fake OpenAI chat completions API.

Errors use the official body ``{"error": {"message", "type", "param", "code"}}`` with the matching
HTTP status, so the official SDK raises the same exception classes it raises against the real
service. The answer to a product description is a short, plausible video prompt, built
deterministically from the last user message so tests can assert on it.

Refusals come in all four documented forms (two HTTP 400 codes, ``message.refusal`` and
``finish_reason == "content_filter"``); ``refusal_mode = "cycle"`` rotates through them so a test
suite meets every form without configuring each.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator.state import bearer_token, current_call, get_state

CYCLE = ("http400", "invalid_prompt", "refusal", "content_filter")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."

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
    texts = [_text_of(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    user_text = texts[-1] if texts else ""
    marker = cfg.content_policy_marker.lower()
    flagged = bool(marker) and any(marker in t.lower() for t in texts)

    finish_reason = "stop"
    content: str | None = video_prompt(user_text)
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


def video_prompt(user_text: str) -> str:
    """A plausible image-to-video prompt about the product in ``user_text``."""
    subject = product_subject(user_text)
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
    ]
