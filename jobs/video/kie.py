"""KIE "Market" jobs API client: create an image-to-video task, query it, read the balance,
and upload a product photo (the File Upload API, on its own host).

Every failure of an exchange is classified here, once, into a :class:`~worker.errors.ErrorClass`
and raised as :class:`~worker.errors.ProviderError`; the pipeline above never looks at an HTTP
status or a KIE code. The client does one HTTP exchange per call and never retries: the pipeline
owns the single retry loop, so a hidden retry here would double the provider's bill and the
pacing budget.

KIE reports errors two ways, and its documentation says both: as a real HTTP status, or as the
``code`` field of an HTTP 200 body. The message key is ``msg`` on some pages and ``message`` on
others, and either may be ``""`` or ``null``. A 5xx may come as an HTML page. All of these are
read the same way by :meth:`KieClient._exchange`.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from jobs.video.catalog import Family, ModelSpec
from jobs.video.settings import video_settings
from worker import http as provider_http
from worker.errors import ErrorClass, ProviderError

if TYPE_CHECKING:
    from worker.config import ApiKey, Settings

__all__ = [
    "PROVIDER",
    "KieClient",
    "KieTask",
    "TaskState",
    "Uploaded",
    "classify_task_failure",
    "outcome_unknown",
]

log = logging.getLogger(__name__)

#: The provider name carried by every :class:`ProviderError` raised here.
PROVIDER = "kie"

_CREATE_PATH = "/api/v1/jobs/createTask"
_RECORD_PATH = "/api/v1/jobs/recordInfo"
#: Veo 3.1 is not on the Market API: its own create and poll endpoints.
_VEO_CREATE_PATH = "/api/v1/veo/generate"
_VEO_RECORD_PATH = "/api/v1/veo/record-info"
_CREDIT_PATH = "/api/v1/chat/credit"
#: The File Upload API, on its own host (``KIE_UPLOAD_URL``).
_UPLOAD_PATH = "/api/file-stream-upload"
#: How long KIE keeps an uploaded file: its pages say 24 hours and 3 days; the shorter holds.
UPLOAD_LIFETIME_SECONDS = 24 * 3600.0

# What the user reads. Short and plain: the operator message carries the details.
_USER_POLICY = "The video service refused this product image or description as not allowed."
_USER_INVALID = "The video service could not accept this product image or description."
_USER_FAILED = "The video service could not make a video from this product image."
_USER_UNAVAILABLE = "This video service is temporarily unavailable."

# A failMsg that speaks of content rules means the user's input was refused, whatever the code.
_POLICY_RE = re.compile(
    r"prohibit|polic|safety|moderat|nsfw|sensitive|inappropriate|not allowed", re.IGNORECASE
)
# "Internal error" / "try again" mean the provider's own trouble: worth another attempt.
_INTERNAL_RE = re.compile(r"internal (server )?error|try again", re.IGNORECASE)
# What KIE answers createTask for a model it will not run: paused (500), or a name it does not
# (or no longer) support (422, 404 in a 2026-09 probe). Such an answer proves no task was made.
_MODEL_GONE_RE = re.compile(
    r"temporarily paused|model name you specified is not supported|model is not supported"
    r"|unsupported model|unknown model|model not found|model does not exist",
    re.IGNORECASE,
)
# Words that show a "does not exist" is about the caller's input, not a withdrawn model page.
_INPUT_WORDS_RE = re.compile(r"image|url|file|task|record", re.IGNORECASE)


class TaskState(enum.StrEnum):
    """The life of a KIE task as ``recordInfo`` reports it."""

    WAITING = "waiting"
    QUEUING = "queuing"
    GENERATING = "generating"
    SUCCESS = "success"
    FAIL = "fail"

    @property
    def finished(self) -> bool:
        """Whether the task will not change any more (polling can stop)."""
        return self in (TaskState.SUCCESS, TaskState.FAIL)


@dataclass(frozen=True)
class KieTask:
    """One ``recordInfo`` answer, normalised.

    A task in state :attr:`TaskState.FAIL` is a normal answer, not an exception: the poll step
    records the task's end and then raises :meth:`failure` itself, so the exchange (which
    succeeded) and the task's outcome (which failed) stay two separate facts.
    """

    task_id: str
    state: TaskState
    result_urls: tuple[str, ...] = ()
    fail_code: str | None = None
    fail_msg: str | None = None
    create_time: int | None = None
    complete_time: int | None = None
    #: The key that queried the task; carried into :meth:`failure` for the timeline.
    key_name: str | None = None
    #: What the task cost, in KIE credits (``creditsConsumed``), when KIE says.
    credits: float | None = None

    def failure(self) -> ProviderError:
        """The classified error for a failed task (see :func:`classify_task_failure`)."""
        if self.state is not TaskState.FAIL:
            raise ValueError(f"task {self.task_id} is {self.state}, not failed")
        return classify_task_failure(
            self.fail_code, self.fail_msg, task_id=self.task_id, key_name=self.key_name
        )


def classify_task_failure(
    fail_code: str | None,
    fail_msg: str | None,
    *,
    task_id: str = "",
    key_name: str | None = None,
) -> ProviderError:
    """Classify a task that ended in state ``fail`` from its ``failCode`` and ``failMsg``.

    The message is checked before the code because KIE's documented policy refusal comes as
    ``failCode "422"`` but other refusals were seen under 500 and 501: what the message says about
    the content is the more reliable signal.
    """
    code = (fail_code or "").strip() or None
    msg = (fail_msg or "").strip() or None
    text = msg or ""
    operator = f"task {task_id} failed: failCode={code or '-'} failMsg={msg or '-'}"
    if _POLICY_RE.search(text):
        cls, user = ErrorClass.USER_ERROR, _USER_POLICY
    elif code == "422":
        cls, user = ErrorClass.USER_ERROR, _USER_INVALID
    elif code == "500" or _INTERNAL_RE.search(text):
        cls, user = ErrorClass.TEMPORARY, None
    elif code == "501":
        cls, user = ErrorClass.USER_ERROR, _USER_FAILED
    else:
        cls, user = ErrorClass.TEMPORARY, None
    return ProviderError(
        cls, operator, provider=PROVIDER, code=code, user_message=user, key_name=key_name
    )


def outcome_unknown(exc: httpx.HTTPError) -> bool:
    """Whether a transport failure may have reached KIE (a read timeout) or surely did not.

    Both are TEMPORARY, but they differ for ``createTask``: after a read timeout KIE may well
    have created (and charged) the task, so the submit step must not treat a retry as free.
    The error's ``outcome_unknown`` carries this.
    """
    return provider_http.outcome_unknown(exc)


def _is_withdrawal(message: str) -> bool:
    """Whether a message says the model (its page or endpoint) was withdrawn.

    The documented answer is "the page does not exist or is not published". A bare "does not
    exist" about an image, a file or a task is the caller's input, not a withdrawal.
    """
    lowered = message.lower()
    if "not published" in lowered:
        return True
    return "does not exist" in lowered and not _INPUT_WORDS_RE.search(lowered)


def _as_int(value: Any) -> int | None:
    """An integer from an int or a numeric string; anything else is ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _as_credits(value: Any) -> float | None:
    """``creditsConsumed``: a number or a numeric string, never negative; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _as_text(value: Any) -> str | None:
    """A non-empty string from a string or a number; ``""``, ``null`` and others are ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


class _Malformed(Exception):
    """A 200 answer whose shape is not what the documentation says (raised as TEMPORARY)."""


def _result_urls(raw: Any) -> tuple[str, ...]:
    """URLs from ``resultJson``: a JSON string, ``""``, ``null``, or an already-decoded dict."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise _Malformed("resultJson is not JSON") from exc
    if not isinstance(raw, dict):
        raise _Malformed("resultJson is not an object")
    urls = raw.get("resultUrls")
    if urls is None:
        return ()
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _Malformed("resultUrls is not a list of strings")
    return tuple(u for u in urls if u.strip())


@dataclass(frozen=True)
class Uploaded:
    """A file KIE's File Upload API holds: the URL it serves it at, and its size."""

    url: str
    size: int


class KieClient:
    """A thin, typed client of the KIE jobs API; one instance is shared by all threads.

    Keys are passed per call (the key pool chooses them), so one client serves every key and
    the error carries ``key_name`` for the pool's cooldown and quarantine decisions.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        http: httpx.Client | None = None,
        upload_url: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.upload_url = (upload_url or base_url).rstrip("/")
        # Connect fails fast; read covers KIE's slow but successful answers.
        self.timeout = provider_http.timeout(timeout)
        self._owns_http = http is None
        self._http = http or provider_http.client(timeout)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http: httpx.Client | None = None, timeout: float | None = None
    ) -> KieClient:
        """A client configured from ``KIE_*`` settings (each task names its model: see
        :mod:`jobs.video.catalog`); ``timeout`` overrides ``KIE_TIMEOUT`` (e.g. the doctor's
        short time box)."""
        s = video_settings(settings)
        return cls(
            s.kie_base_url,
            timeout=timeout if timeout is not None else s.kie_timeout,
            http=http,
            upload_url=s.kie_upload_url,
        )

    def close(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> KieClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KieClient(base_url={self.base_url!r})"

    # -- public calls ----------------------------------------------------------------------

    def create_task(
        self,
        key: ApiKey,
        model: ModelSpec,
        inputs: dict[str, Any],
        *,
        callback_url: str | None = None,
    ) -> str:
        """Create one image-to-video task of ``model`` and return its id (an opaque string).

        ``inputs`` are the model's own fields (:meth:`ModelSpec.build`): Market models get them
        as ``input``, Veo as its flat body. A success only means KIE accepted the task; the
        caller must store the id and the key name at once, so a redelivered step polls this
        task instead of paying for another. ``callback_url`` (jobs.video.callbacks.callback_url:
        one per task) is where KIE calls when the task ends; None asks for no callback.

        An UNAVAILABLE error from here proves KIE made no task (the model is paused, disabled
        or unknown): the caller may try another model without paying twice.
        """
        payload: dict[str, Any]
        if model.family is Family.VEO:
            payload = {**inputs, "model": model.model_value}
            path, endpoint = _VEO_CREATE_PATH, "veo generate"
        else:
            payload = {"model": model.model_value, "input": inputs}
            path, endpoint = _CREATE_PATH, "createTask"
        if callback_url and model.accepts_callback:
            payload["callBackUrl"] = callback_url
        data = self._exchange(
            key, "POST", path, endpoint=endpoint, json_body=payload, not_found=None, creates=True
        )
        task_id = data.get("taskId") if isinstance(data, dict) else None
        # Strictly a string: a number here is a malformed answer, not an id to poll later.
        if not isinstance(task_id, str) or not task_id.strip():
            raise self._malformed(key, endpoint, "data.taskId is missing or not a string")
        log.debug("kie createTask accepted task %s with key %s", task_id, key.name)
        return task_id

    def get_task(
        self,
        key: ApiKey,
        task_id: str,
        *,
        family: Family = Family.MARKET,
        not_found_before: bool = False,
    ) -> KieTask:
        """Query one task; a failed task is returned (see :meth:`KieTask.failure`), not raised.

        ``family`` says which endpoint made it (Market ``recordInfo`` or Veo ``record-info``).
        ``not_found_before`` says the previous poll already got a 404: a task KIE just created
        can be briefly unknown to ``recordInfo`` (TEMPORARY), but twice means our stored id or
        key is wrong (INTERNAL).
        """
        if family is Family.VEO:
            return self._get_veo_task(key, task_id, not_found_before=not_found_before)
        data = self._exchange(
            key,
            "GET",
            _RECORD_PATH,
            endpoint="recordInfo",
            params={"taskId": task_id},
            not_found=ErrorClass.INTERNAL if not_found_before else ErrorClass.TEMPORARY,
        )
        if not isinstance(data, dict):
            raise self._malformed(key, "recordInfo", "data is not an object")
        raw_state = data.get("state")
        if not isinstance(raw_state, str) or not raw_state.strip():
            raise self._malformed(key, "recordInfo", "data.state is missing or not a string")
        try:
            state = TaskState(raw_state.strip().lower())
        except ValueError:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"recordInfo: task {task_id} has an unknown state {raw_state[:40]!r}",
                provider=PROVIDER,
                status=200,
                key_name=key.name,
            ) from None
        returned_id = data.get("taskId")
        if returned_id is not None and not isinstance(returned_id, str):
            raise self._malformed(key, "recordInfo", "data.taskId is not a string")
        try:
            urls = _result_urls(data.get("resultJson"))
        except _Malformed as exc:
            if state is TaskState.SUCCESS:
                raise self._malformed(key, "recordInfo", str(exc)) from None
            urls = ()  # only a successful task's result matters
        task = KieTask(
            task_id=returned_id or task_id,
            state=state,
            result_urls=urls,
            fail_code=_as_text(data.get("failCode")),
            fail_msg=_as_text(data.get("failMsg")),
            create_time=_as_int(data.get("createTime")),
            complete_time=_as_int(data.get("completeTime")),
            key_name=key.name,
            credits=_as_credits(data.get("creditsConsumed")),
        )
        if state is TaskState.SUCCESS and not urls:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"recordInfo: task {task_id} succeeded without a result URL",
                provider=PROVIDER,
                status=200,
                key_name=key.name,
            )
        return task

    def _get_veo_task(self, key: ApiKey, task_id: str, *, not_found_before: bool) -> KieTask:
        """Veo's ``record-info``: ``successFlag`` 0 generating, 1 success, 2 and 3 failed;
        the videos in ``response.resultUrls``; a failure's ``errorCode``/``errorMessage``."""
        data = self._exchange(
            key,
            "GET",
            _VEO_RECORD_PATH,
            endpoint="veo record-info",
            params={"taskId": task_id},
            not_found=ErrorClass.INTERNAL if not_found_before else ErrorClass.TEMPORARY,
        )
        if not isinstance(data, dict):
            raise self._malformed(key, "veo record-info", "data is not an object")
        flag = _as_int(data.get("successFlag"))
        states = {0: TaskState.GENERATING, 1: TaskState.SUCCESS, 2: TaskState.FAIL}
        state = TaskState.FAIL if flag == 3 else states.get(flag) if flag is not None else None
        if state is None:
            raise self._malformed(key, "veo record-info", "data.successFlag is not 0, 1, 2 or 3")
        response = data.get("response")
        urls: tuple[str, ...] = ()
        if isinstance(response, dict):
            raw = response.get("resultUrls")
            if isinstance(raw, str):  # the callback's schema types it a string; accept one
                raw = [raw]
            if isinstance(raw, list):
                urls = tuple(u for u in raw if isinstance(u, str) and u.strip())
        if state is TaskState.SUCCESS and not urls:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"veo record-info: task {task_id} succeeded without a result URL",
                provider=PROVIDER,
                status=200,
                key_name=key.name,
            )
        returned_id = data.get("taskId")
        return KieTask(
            task_id=returned_id if isinstance(returned_id, str) and returned_id else task_id,
            state=state,
            result_urls=urls,
            fail_code=_as_text(data.get("errorCode")),
            fail_msg=_as_text(data.get("errorMessage")),
            create_time=_as_int(data.get("createTime")),
            complete_time=_as_int(data.get("completeTime")),
            key_name=key.name,
            credits=_as_credits(data.get("creditsConsumed")),
        )

    def upload_file(
        self, key: ApiKey, content: bytes, *, file_name: str, mime: str, upload_path: str
    ) -> Uploaded:
        """Upload one file to KIE's File Upload API (``POST /api/file-stream-upload``, multipart
        ``file``, ``uploadPath``, ``fileName``; free) and return where KIE serves it. Errors are
        classified as createTask's are; KIE keeps the file for a limited time
        (:data:`UPLOAD_LIFETIME_SECONDS`). An upload is safe to repeat: the same ``fileName``
        in the same ``uploadPath`` replaces the file."""
        data = self._exchange(
            key,
            "POST",
            _UPLOAD_PATH,
            endpoint="file upload",
            not_found=None,
            form=(
                {"uploadPath": upload_path, "fileName": file_name},
                {"file": (file_name, content, mime)},
            ),
            base_url=self.upload_url,
        )
        url = data.get("downloadUrl") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise self._malformed(key, "file upload", "data.downloadUrl is missing or not a URL")
        size = _as_int(data.get("fileSize"))
        log.debug("kie file upload of %d bytes with key %s", len(content), key.name)
        return Uploaded(url=url, size=size if size is not None else len(content))

    def credit_balance(self, key: ApiKey) -> float:
        """The account's remaining credits (for ``worker doctor`` and the key pool's alerts)."""
        data = self._exchange(key, "GET", _CREDIT_PATH, endpoint="credit", not_found=None)
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise self._malformed(key, "credit", "data is not a number")
        return float(data)

    # -- one exchange, classified ---------------------------------------------------------

    def _exchange(
        self,
        key: ApiKey,
        method: str,
        path: str,
        *,
        endpoint: str,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        not_found: ErrorClass | None,
        creates: bool = False,
        form: tuple[dict[str, str], dict[str, Any]] | None = None,
        base_url: str | None = None,
    ) -> Any:
        """Send one request and return the body's ``data``, or raise a classified error.

        ``not_found`` is the class of a 404 for this endpoint (``None``: the endpoint or model
        is gone, UNAVAILABLE). ``creates`` marks a create request, whose "model paused" or
        "model not supported" answer is UNAVAILABLE. ``form``: a multipart body (fields, files)
        instead of JSON, to ``base_url`` when given (the File Upload API's host)."""
        headers = {
            "Authorization": f"Bearer {key.secret.get_secret_value()}",
            "Accept": "application/json",
        }
        data, files = form or (None, None)
        url = (base_url or self.base_url) + path
        try:
            response = self._http.request(
                method, url, headers=headers, json=json_body, data=data, files=files,
                params=params, timeout=self.timeout,
            )  # fmt: skip
        except httpx.TimeoutException as exc:
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"{endpoint}: timed out ({type(exc).__name__})",
                provider=PROVIDER,
                outcome_unknown=outcome_unknown(exc),
                key_name=key.name,
            ) from exc
        except httpx.HTTPError as exc:  # connection refused, reset, protocol error, ...
            raise ProviderError(
                ErrorClass.TEMPORARY,
                f"{endpoint}: {type(exc).__name__}: {exc}",
                provider=PROVIDER,
                outcome_unknown=outcome_unknown(exc),
                key_name=key.name,
            ) from exc

        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if not 200 <= status < 300:
                snippet = " ".join(response.text[:120].split())
                raise self._classify(
                    key, endpoint, status, status, f"non-JSON body: {snippet}", not_found, response
                )
            raise self._malformed(key, endpoint, "body is not a JSON object", status)

        body_code = _as_int(body.get("code"))
        message = _as_text(body.get("msg")) or _as_text(body.get("message")) or ""
        if body_code is not None and body_code != 200:
            code = body_code
        elif not 200 <= status < 300:
            code = status
        else:
            code = 200
        if code != 200:
            raise self._classify(
                key, endpoint, status, code, message, not_found, response, creates=creates
            )
        if body.get("data") is None:
            raise self._malformed(key, endpoint, "data is missing", status)
        return body["data"]

    def _classify(
        self,
        key: ApiKey,
        endpoint: str,
        status: int,
        code: int,
        message: str,
        not_found: ErrorClass | None,
        response: httpx.Response,
        *,
        creates: bool = False,
    ) -> ProviderError:
        """Map one KIE error code (body or HTTP) and its message to a ProviderError."""
        retry_after: float | None = None
        user: str | None = None
        if code in (401, 403):
            cls = ErrorClass.AUTH
        elif code == 402:
            cls = ErrorClass.BILLING
        elif code == 429:
            cls = ErrorClass.RATE_LIMIT
            retry_after = provider_http.retry_after(response.headers)
        elif code == 404 and not_found is not None and "not published" not in message.lower():
            cls = not_found
        elif code == 505 or code == 404 or _is_withdrawal(message):
            cls, user = ErrorClass.UNAVAILABLE, _USER_UNAVAILABLE
        elif creates and code in (422, 500) and _MODEL_GONE_RE.search(message):
            # A paused model (500 "This interface is temporarily paused") or one KIE does not
            # know (422 "The model name you specified is not supported"): no task was created.
            # A content-policy 422 never matches these words.
            cls, user = ErrorClass.UNAVAILABLE, _USER_UNAVAILABLE
        elif code == 422:
            cls = ErrorClass.USER_ERROR
            user = _USER_POLICY if _POLICY_RE.search(message) else _USER_INVALID
        elif code == 501:
            if _INTERNAL_RE.search(message):
                cls = ErrorClass.TEMPORARY
            else:
                cls = ErrorClass.USER_ERROR
                user = _USER_POLICY if _POLICY_RE.search(message) else _USER_FAILED
        elif code == 455 or code >= 500:
            cls = ErrorClass.TEMPORARY
        elif 400 <= code < 500:
            cls = ErrorClass.INTERNAL  # a request KIE does not understand: our bug
        else:
            cls = ErrorClass.TEMPORARY  # an unknown code outside the documented table
        text = f"{endpoint}: code {code}"
        if code != status:
            text += f" (HTTP {status})"
        if message:
            text += f": {message[:500]}"
        log.debug("kie %s with key %s: %s -> %s", endpoint, key.name, code, cls)
        return ProviderError(
            cls,
            text,
            provider=PROVIDER,
            status=status,
            code=str(code),
            user_message=user,
            retry_after=retry_after,
            key_name=key.name,
        )

    def _malformed(
        self, key: ApiKey, endpoint: str, detail: str, status: int | None = 200
    ) -> ProviderError:
        """A 200 answer we cannot read: the provider's glitch, worth another attempt."""
        return ProviderError(
            ErrorClass.TEMPORARY,
            f"{endpoint}: malformed response: {detail}",
            provider=PROVIDER,
            status=status,
            key_name=key.name,
        )
