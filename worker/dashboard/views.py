"""The dashboard's pages (aiohttp handlers): login, overview, jobs, one job, users, keys and
models, and their live streams. Reading goes through :mod:`worker.dashboard.queries`; the
actions are in :mod:`worker.dashboard.actions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from worker import stats
from worker.dashboard import auth, csrf
from worker.dashboard import queries as dq
from worker.dashboard.app import FORM, SESSION, SESSION_COOKIE, STATE, Dashboard
from worker.dashboard.live import TooManyViewers
from worker.errors import RequestRefused, UnknownJob
from worker.keys import KeyPool
from worker.kinds import all_kinds
from worker.models import ResourceSwitches

log = logging.getLogger(__name__)

#: The overview's figures are shared by every viewer for this long, and an open overview
#: reloads itself at most this often (its statements cost a few hundred ms on a million jobs:
#: docs/performance.md).
OVERVIEW_SECONDS = 15.0
#: An open job page reloads itself at most this often when the job changes.
JOB_SECONDS = 3.0

#: A failed login waits this long before answering (slows guessing; the hash costs more).
LOGIN_FAILURE_DELAY = 1.0


def dashboard_of(request: web.Request) -> Dashboard:
    return request.app[STATE]


def session_of(request: web.Request) -> auth.Session:
    return request[SESSION]


def form_of(request: web.Request) -> dict[str, str]:
    form: dict[str, str] = request.get(FORM) or {}
    return form


def local_path(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirect: browsers
    read ``//host`` and ``/\\host`` as another site)."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return default
    return target


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    response = dashboard_of(request).render(request, "error.html", status=status, message=message)
    response.set_status(status)
    return response


# --- login ------------------------------------------------------------------------------------


def _https(request: web.Request) -> bool:
    """Whether the browser speaks HTTPS (to us, or to the proxy in front): cookies are then
    marked Secure. The header only ever adds that restriction, so trusting it is safe."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def login_form(request: web.Request) -> web.Response:
    token = request.cookies.get(csrf.LOGIN_COOKIE)
    if not token:
        import secrets

        token = secrets.token_urlsafe(24)
    response = dashboard_of(request).render(
        request,
        "login.html",
        login_csrf=token,
        next=request.query.get("next", "/"),
        error=None,
        no_users=not dashboard_of(request).users,
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE, token, httponly=True, samesite="Strict", secure=_https(request)
    )
    return response


async def login(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    form = {k: str(v) for k, v in (await request.post()).items()}
    csrf.check(request, form, request.cookies.get(csrf.LOGIN_COOKIE, ""))
    name = form.get("name", "")[:64]
    password = form.get("password", "")[:1024]
    user = await dash.run(auth.authenticate, dash.users, name, password)
    if user is None:
        await asyncio.sleep(LOGIN_FAILURE_DELAY)
        log.warning("dashboard: failed login for %r from %s", name, request.remote)
        response = dash.render(
            request,
            "login.html",
            login_csrf=request.cookies.get(csrf.LOGIN_COOKIE, ""),
            next=form.get("next", "/"),
            error="Wrong name or password.",
            no_users=not dash.users,
        )
        response.set_status(401)
        return response
    session = dash.sessions.create(user)
    log.info("dashboard: %s logged in (%s)", user.name, user.role)
    response = web.HTTPSeeOther(local_path(form.get("next"), "/"))
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        secure=_https(request),
        max_age=int(auth.SESSION_SECONDS),
    )
    response.del_cookie(csrf.LOGIN_COOKIE)
    raise response


async def logout(request: web.Request) -> web.Response:
    dashboard_of(request).sessions.end(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE)
    raise response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


# --- overview ---------------------------------------------------------------------------------


def key_pool(dash: Dashboard) -> KeyPool:
    return KeyPool.from_settings(dash.settings, dash.redis)


def _redis_view(dash: Dashboard) -> dict[str, Any]:
    """Keys, models and queues from Redis; an unreachable Redis is shown, not raised."""
    try:
        keys = key_pool(dash).statuses()
        depths = stats.queue_depths(dash.redis, dash.settings.redis_namespace, stats.queue_names())
        return {"key_rows": keys, "queues": depths, "models": _models(dash), "error": None}
    except Exception as exc:
        return {"key_rows": [], "queues": [], "models": None, "error": f"Redis: {exc}"}


def resource_groups(dash: Dashboard) -> dict[str, list[str]]:
    """The switchable resources (models) the kinds declare (``JobKind.resources``), by group."""
    groups: dict[str, list[str]] = {}
    for kind in all_kinds():
        group: Any = getattr(kind, "resources", None)
        if group is not None:
            names = [str(n) for n in group.names(dash.settings)]
            groups.setdefault(str(group.name), []).extend(names)
    return groups


def _models(dash: Dashboard) -> list[dict[str, Any]] | None:
    """Model (resource) states from :mod:`worker.models`, or None when no kind declares any."""
    groups = resource_groups(dash)
    if not groups:
        return None
    rows: list[dict[str, Any]] = []
    for group, names in groups.items():
        switches = ResourceSwitches(dash.redis, dash.settings.redis_namespace, group)
        rows += [{"group": group, **s.as_dict()} for s in switches.statuses(names)]
    return rows


async def overview(request: web.Request) -> web.Response:
    dash = dashboard_of(request)

    def read() -> dict[str, Any]:
        with dash.db.transaction() as conn:
            return dq.overview(conn)

    data, redis = await asyncio.gather(
        dash.cached("overview", OVERVIEW_SECONDS, read), dash.run(_redis_view, dash)
    )
    return dash.render(
        request,
        "overview.html",
        data=data,
        redis=redis,
        live="/live/overview",
        live_every=OVERVIEW_SECONDS,
        now=_now(),
    )


def _now() -> datetime:
    return datetime.now(UTC)


# --- jobs -------------------------------------------------------------------------------------


async def jobs(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    try:
        flt = dq.JobFilter.from_query(request.query)
        before = dq.page_cursor(request.query.get("before"))
    except RequestRefused as exc:
        return error_page(request, 400, str(exc))

    def read() -> dq.JobPage:
        with dash.db.transaction() as conn:
            return dq.job_page(conn, flt, before)

    page = await dash.run(read)
    return dash.render(
        request,
        "jobs.html",
        flt=flt,
        page=page,
        before=before,
        statuses=stats.STATUSES,
        error_classes=stats.ERROR_CLASSES,
    )


def job_id_of(request: web.Request) -> int:
    try:
        job_id = int(request.match_info["job_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such job\n") from None
    if job_id <= 0 or job_id > 2**63 - 1:
        raise web.HTTPNotFound(text="no such job\n")
    return job_id


async def job(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    job_id = job_id_of(request)

    def read() -> dict[str, Any]:
        with dash.db.transaction() as conn:
            return dq.job_detail(conn, job_id)

    try:
        view = await dash.run(read)
    except UnknownJob as exc:
        return error_page(request, 404, str(exc))
    file = _stored_file(dash, view["result"])
    return dash.render(
        request,
        "job.html",
        job=view,
        file=file,
        live=f"/live/jobs/{job_id}",
        live_every=JOB_SECONDS,
        payload_json=json.dumps(view["payload"], indent=2, ensure_ascii=False, sort_keys=True),
        state_json=json.dumps(view["state"], indent=2, ensure_ascii=False, sort_keys=True),
    )


def _stored_file(dash: Dashboard, result: str | None) -> Path | None:
    """The job's result file, if it is a file inside ``STORAGE_DIR``."""
    if not result:
        return None
    root = Path(dash.settings.storage_dir).resolve()
    path = Path(result)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


async def job_file(request: web.Request) -> web.StreamResponse:
    dash = dashboard_of(request)
    job_id = job_id_of(request)
    try:
        view = await dash.run(dash.client.job, job_id)
    except UnknownJob as exc:
        return error_page(request, 404, str(exc))
    path = _stored_file(dash, view["result"])
    if path is None:
        return error_page(request, 404, f"job {job_id} has no stored file (any more)")
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
    )


# --- users ------------------------------------------------------------------------------------


async def user_lookup(request: web.Request) -> web.Response:
    raw = request.query.get("user", "").strip()
    if raw:
        try:
            user_id = int(raw)
        except ValueError:
            return error_page(request, 400, "refused: user must be a whole number")
        raise web.HTTPSeeOther(f"/users/{user_id}")
    return dashboard_of(request).render(request, "user.html", detail=None, page=None)


async def user(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    try:
        user_id = int(request.match_info["user_id"])
        flt = dq.JobFilter(user_id=user_id)

        def read() -> tuple[dict[str, Any], dq.JobPage]:
            with dash.db.transaction() as conn:
                return dq.user_detail(conn, user_id), dq.job_page(conn, flt, None, 20)

        detail, page = await dash.run(read)
    except (RequestRefused, ValueError) as exc:
        return error_page(request, 400, f"refused: {exc}")
    return dash.render(request, "user.html", detail=detail, page=page, flt=flt)


# --- keys and models --------------------------------------------------------------------------


async def keys(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    redis = await dash.run(_redis_view, dash)
    return dash.render(request, "keys.html", redis=redis)


# --- live -------------------------------------------------------------------------------------


async def _stream(request: web.Request, topic: str, reader: Any) -> web.StreamResponse:
    dash = dashboard_of(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    try:
        async with dash.live.subscribe(topic, reader) as queue:
            await response.prepare(request)
            await response.write(b"retry: 5000\n\n")
            while True:
                try:
                    value = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if value is None:
                    break
                await response.write(f"event: change\ndata: {value}\n\n".encode())
    except TooManyViewers:
        raise web.HTTPServiceUnavailable(text="too many live viewers\n") from None
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def live_overview(request: web.Request) -> web.StreamResponse:
    dash = dashboard_of(request)

    def read() -> str:
        with dash.db.connection() as conn:
            return json.dumps(dq.pulse(conn), sort_keys=True)

    return await _stream(request, "overview", read)


async def live_job(request: web.Request) -> web.StreamResponse:
    dash = dashboard_of(request)
    job_id = job_id_of(request)

    def read() -> str | None:
        with dash.db.connection() as conn:
            return dq.job_pulse(conn, job_id)

    return await _stream(request, f"job:{job_id}", read)


# --- templates --------------------------------------------------------------------------------


def _when(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _query(flt: dq.JobFilter, **extra: Any) -> str:
    return flt.query_string(**extra)


def _with(flt: dq.JobFilter, **changes: Any) -> str:
    params = {**flt.params(), **{k: str(v) for k, v in changes.items() if v is not None}}
    return urlencode(params)


FILTERS: dict[str, Any] = {"when": _when, "query": _query, "with_filter": _with}


def add_routes(app: web.Application) -> None:
    from worker.dashboard import actions

    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", overview)
    app.router.add_get("/jobs", jobs)
    app.router.add_get("/jobs/bulk", actions.bulk_confirm)
    app.router.add_post("/jobs/bulk", actions.bulk_run)
    app.router.add_get(r"/jobs/{job_id:\d+}", job)
    app.router.add_get(r"/jobs/{job_id:\d+}/file", job_file)
    app.router.add_post(r"/jobs/{job_id:\d+}/retry", actions.job_retry)
    app.router.add_post(r"/jobs/{job_id:\d+}/cancel", actions.job_cancel)
    app.router.add_get("/users", user_lookup)
    app.router.add_get(r"/users/{user_id:\d+}", user)
    app.router.add_get("/keys", keys)
    app.router.add_post(r"/keys/{provider}/{name}/{action:enable|disable}", actions.key_action)
    app.router.add_post(r"/models/{group}/{name:.+}/{action:enable|disable}", actions.model_action)
    app.router.add_get("/live/overview", live_overview)
    app.router.add_get(r"/live/jobs/{job_id:\d+}", live_job)
