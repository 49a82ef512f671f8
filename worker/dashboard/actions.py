"""The dashboard's actions: retry and cancel (one job, or what a filter matches), enable and
disable keys and models.

Each is a POST (its CSRF token checked by the application's middleware), needs the ``admin``
role, goes through the public path the CLI uses (:meth:`worker.client.Client.retry` and
``cancel``, :class:`worker.keys.KeyPool`, :class:`worker.models.ResourceSwitches`), and names
the operator: on the job's timeline, or in the key's or model's reason.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from worker.dashboard import auth
from worker.dashboard import queries as dq
from worker.dashboard.app import Dashboard
from worker.dashboard.views import (
    dashboard_of,
    error_page,
    form_of,
    job_id_of,
    key_pool,
    local_path,
    resource_groups,
    session_of,
)
from worker.errors import RequestRefused, WorkerError
from worker.keys import KeyStatus
from worker.models import ResourceStatus, ResourceSwitches

log = logging.getLogger(__name__)


def _require_admin(request: web.Request) -> auth.Session:
    session = session_of(request)
    if not session.user.is_admin:
        raise web.HTTPForbidden(text="refused: this action needs the admin role\n")
    return session


def _back(request: web.Request, default: str) -> web.HTTPSeeOther:
    """Redirect to the page the form was on (same site only)."""
    return web.HTTPSeeOther(local_path(form_of(request).get("back"), default))


async def job_retry(request: web.Request) -> web.Response:
    session = _require_admin(request)
    dash = dashboard_of(request)
    job_id = job_id_of(request)
    message = await dash.run(_retry_one, dash, job_id, session.user.name)
    session.flash.append(message)
    raise _back(request, f"/jobs/{job_id}")


async def job_cancel(request: web.Request) -> web.Response:
    session = _require_admin(request)
    dash = dashboard_of(request)
    job_id = job_id_of(request)
    message = await dash.run(_cancel_one, dash, job_id, session.user.name)
    session.flash.append(message)
    raise _back(request, f"/jobs/{job_id}")


def _retry_one(dash: Dashboard, job_id: int, operator: str) -> str:
    """Retry through the client (a new, charged job); the old job's timeline names who did it."""
    try:
        result = dash.client.retry(job_id)
    except RequestRefused as exc:
        return f"job {job_id} not retried: {exc}"
    new = result.job_ids[0]
    if result.replayed:
        return f"job {job_id} was already retried as job {new}"
    with dash.db.transaction() as conn:
        dq.operator_event(
            conn,
            job_id,
            "retried",
            operator,
            f"retried as job {new}; {result.credits_held} credit(s) held",
        )
        dq.operator_event(conn, new, "operator", operator, f"retry of job {job_id}")
    log.info("dashboard: %s retried job %d as %d", operator, job_id, new)
    return f"job {job_id} retried as job {new}"


def _cancel_one(dash: Dashboard, job_id: int, operator: str) -> str:
    """Cancel through the client, which refunds the hold and writes the timeline event."""
    try:
        dash.client.cancel(job_id, reason=f"cancelled by {operator} (dashboard)")
    except RequestRefused as exc:
        return f"job {job_id} not cancelled: {exc}"
    log.info("dashboard: %s cancelled job %d", operator, job_id)
    return f"job {job_id} cancelled"


# --- bulk -------------------------------------------------------------------------------------


def _bulk_inputs(values: Any) -> tuple[dq.JobFilter, str]:
    flt = dq.JobFilter.from_query(values)
    action = str(values.get("action", ""))
    if action not in dq.BULK_STATUSES:
        raise web.HTTPBadRequest(text="refused: action must be retry or cancel\n")
    return flt, action


async def bulk_confirm(request: web.Request) -> web.Response:
    _require_admin(request)
    dash = dashboard_of(request)
    try:
        flt, action = _bulk_inputs(request.query)
    except RequestRefused as exc:
        return error_page(request, 400, str(exc))

    def read() -> dq.BulkMatch:
        with dash.db.transaction() as conn:
            return dq.bulk_match(conn, flt, action)

    match = await dash.run(read)
    return dash.render(
        request,
        "bulk.html",
        flt=flt,
        match=match,
        bulk_max=dq.BULK_MAX,
        statuses=dq.BULK_STATUSES[action],
    )


async def bulk_run(request: web.Request) -> web.Response:
    session = _require_admin(request)
    dash = dashboard_of(request)
    form = form_of(request)
    try:
        flt, action = _bulk_inputs(form)
        max_id = dq.page_cursor(form.get("max_id"))
        expected = int(form.get("count", "-1"))
    except (RequestRefused, ValueError) as exc:
        return error_page(request, 400, f"refused: {exc}")

    def run() -> str:
        with dash.db.transaction() as conn:
            match = dq.bulk_match(conn, flt, action, max_id=max_id)
        if match.too_many or match.count != expected:
            return (
                f"nothing done: {match.count} job(s) match now, not the {expected} you "
                "confirmed; look again"
            )
        one = _retry_one if action == "retry" else _cancel_one
        results = [one(dash, job_id, session.user.name) for job_id in match.job_ids]
        done = sum(1 for r in results if " not " not in r)
        return f"bulk {action}: {done} of {match.count} job(s) done" + (
            "" if done == match.count else "; the others changed state meanwhile"
        )

    message = await dash.run(run)
    session.flash.append(message)
    raise web.HTTPSeeOther("/jobs?" + flt.query_string())


# --- keys and models --------------------------------------------------------------------------


async def key_action(request: web.Request) -> web.Response:
    session = _require_admin(request)
    dash = dashboard_of(request)
    provider, name = request.match_info["provider"], request.match_info["name"]
    action = request.match_info["action"]
    operator = session.user.name

    def act() -> KeyStatus:
        pool = key_pool(dash)
        if action == "enable":
            return pool.enable(name, provider)
        return pool.disable(name, provider, f"disabled by {operator} (dashboard)")

    try:
        status = await dash.run(act)
    except WorkerError as exc:
        session.flash.append(f"key not changed: {exc}")
        raise web.HTTPSeeOther("/keys") from None
    log.info("dashboard: %s %sd %s key %s", operator, action, provider, name)
    session.flash.append(f"{status.provider} key {status.name} is {status.state}")
    raise web.HTTPSeeOther("/keys")


async def model_action(request: web.Request) -> web.Response:
    session = _require_admin(request)
    dash = dashboard_of(request)
    group, name = request.match_info["group"], request.match_info["name"]
    action = request.match_info["action"]
    operator = session.user.name
    if name not in resource_groups(dash).get(group, []):
        raise web.HTTPNotFound(text="no such model\n")

    def act() -> ResourceStatus:
        switches = ResourceSwitches(dash.redis, dash.settings.redis_namespace, group)
        if action == "enable":
            return switches.enable(name)
        return switches.disable(name, f"disabled by {operator} (dashboard)")

    status = await dash.run(act)
    log.info("dashboard: %s %sd model %s", operator, action, name)
    session.flash.append(f"model {status.name} is {status.state}")
    raise web.HTTPSeeOther("/keys")
