"""KIE's callbacks for the video kind: the URL KIE is given, and how a callback is read.

createTask carries ``callBackUrl``: ``KIE_CALLBACK_URL`` with ``job=<id>`` added to its query.
A callback so names its job by primary key, and the task id in its body must be the task that
job holds (``worker.webhooks.wake`` checks): a callback of an earlier generation, or one whose
job id was guessed, wakes nothing.

KIE POSTs the body of ``recordInfo`` (``{"code", "msg", "data": {"taskId", "state", ...}}``)
when the task ends, possibly more than once; for Veo 3.1, ``{"code", "msg", "data": {"taskId",
"info": {"resultUrls"}}}``, with ``code`` 200 on success and 400, 422, 500 or 501 on failure.
Only the task id and state (Veo: its code) are read here: the poll step asks ``recordInfo``
(Veo: ``record-info``) itself, which stays the authority.

Signature, as KIE documents it: ``X-Webhook-Timestamp`` (Unix seconds) and
``X-Webhook-Signature = base64(HMAC-SHA256(taskId + "." + timestamp, webhookHmacKey))``. With
``KIE_WEBHOOK_HMAC_KEY`` set, a request without a valid signature, or whose timestamp is more
than :data:`SIGNATURE_TOLERANCE_SECONDS` from our clock (a replay), is refused with 401. Without
it every well-formed request is read; at worst it makes a waiting job poll early.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobs.video.settings import video_settings
from worker.config import Settings
from worker.webhooks import Wake, Webhook, WebhookRejected, WebhookRequest

#: The query parameter of ``callBackUrl`` that names the job.
JOB_PARAM = "job"
#: A signed callback's timestamp may be this far from our clock (seconds, either way).
SIGNATURE_TOLERANCE_SECONDS = 300.0
#: The step that waits for the task.
WAITING_STEP = "poll"
#: A job id is a bigint.
_MAX_JOB_ID = 2**63 - 1


def callback_url(settings: Settings, job_id: int) -> str | None:
    """The ``callBackUrl`` for job ``job_id``, or ``None`` when callbacks are off."""
    base = video_settings(settings).kie_callback_url
    if not base:
        return None
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != JOB_PARAM]
    query.append((JOB_PARAM, str(job_id)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def signature(key: str, task_id: str, timestamp: str) -> str:
    """KIE's signature of a callback for ``task_id`` sent at ``timestamp`` (the header's text)."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def read(request: WebhookRequest, settings: Settings) -> Wake:
    """The job a KIE callback wakes, or :class:`WebhookRejected` (nothing changes)."""
    job_id = _job_id(request.query.get(JOB_PARAM))
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookRejected(400, "the body is not JSON") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "the body has no data object")
    # The documentation's example code reads data.task_id; its field list says taskId.
    task_id = data.get("taskId", data.get("task_id"))
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > 200:
        raise WebhookRejected(400, "data.taskId is missing or not a string")
    task_id = task_id.strip()
    if not task_id.isprintable():  # a NUL, a lone surrogate, a bidi override...
        raise WebhookRejected(400, "data.taskId holds characters that are not printable")
    _verify(request, settings, task_id)
    state = data.get("state")
    if state is None and type(body.get("code")) is int:
        # Veo's callback has no state: its code says (200 made, 400/422/500/501 failed), and
        # the videos are in data.info.resultUrls. Only the task id and the outcome are read.
        state = "success" if body["code"] == 200 else "fail"
    shown = "".join(c for c in state if c.isprintable()) if isinstance(state, str) else ""
    said = shown.strip().lower()[:20] or "ended"
    return Wake(
        job_id=job_id,
        step=WAITING_STEP,
        provider_task_id=task_id,
        detail=f"KIE called back: task {task_id} is {said}; polling it now",
        data={"state": said, "signed": _signed(settings)},
    )


def _signed(settings: Settings) -> bool:
    return bool(video_settings(settings).kie_webhook_hmac_key.get_secret_value())


def _job_id(raw: str | None) -> int:
    if raw is None:
        raise WebhookRejected(400, f"the URL has no {JOB_PARAM}= parameter")
    # isascii: '²'.isdigit() is True and int('²') fails; 19 digits: int() of thousands of
    # digits is slow, then refused (and a bigint has at most 19)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not 0 < int(raw) <= _MAX_JOB_ID:
        raise WebhookRejected(400, f"{JOB_PARAM}= is not a job id")
    return int(raw)


def _verify(request: WebhookRequest, settings: Settings, task_id: str) -> None:
    key = video_settings(settings).kie_webhook_hmac_key.get_secret_value()
    if not key:
        return
    timestamp = (request.header("X-Webhook-Timestamp") or "").strip()
    given = (request.header("X-Webhook-Signature") or "").strip()
    if not timestamp or not given:
        raise WebhookRejected(401, "the callback is not signed (KIE_WEBHOOK_HMAC_KEY is set)")
    try:
        sent_at = float(timestamp)
        base64.b64decode(given, validate=True)
    except (ValueError, binascii.Error):
        raise WebhookRejected(401, "the signature headers are malformed") from None
    if not math.isfinite(sent_at):  # nan passes any "too far from our clock" comparison
        raise WebhookRejected(401, "the signature's timestamp is not a finite number")
    if abs(request.received_at - sent_at) > SIGNATURE_TOLERANCE_SECONDS:
        raise WebhookRejected(
            401,
            f"the signature's timestamp is {request.received_at - sent_at:+.0f} s from our "
            f"clock (at most {SIGNATURE_TOLERANCE_SECONDS:g} s)",
        )
    if not hmac.compare_digest(signature(key, task_id, timestamp), given):
        raise WebhookRejected(401, "the signature does not match (check KIE_WEBHOOK_HMAC_KEY)")


WEBHOOKS = (
    Webhook(
        name="kie",
        provider="kie",
        read=read,
        public_url=lambda settings: video_settings(settings).kie_callback_url,
        signed=_signed,
        url_variable="KIE_CALLBACK_URL",
        key_variable="KIE_WEBHOOK_HMAC_KEY",
    ),
)
