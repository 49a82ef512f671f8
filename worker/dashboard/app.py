"""`worker dashboard`: the aiohttp application, its middleware and its lifetime.

Server-rendered pages (Jinja2 templates in ``templates/``, one stylesheet and one small script in
``static/``, no build step). Every page but the login form needs a session; every POST needs the
session's CSRF token and a same-origin browser; actions need the ``admin`` role. It listens on
127.0.0.1 unless told otherwise, and refuses to listen anywhere else without users.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from redis import Redis

from worker.broker import redis_client
from worker.client import Client
from worker.config import Settings
from worker.dashboard import auth, csrf
from worker.dashboard.live import LiveHub
from worker.db import Database
from worker.errors import ConfigError
from worker.redaction import install_logging

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "dashboard_session"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Routes served without a session.
PUBLIC = ("/login", "/static/", "/healthz")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

STATE: web.AppKey[Dashboard] = web.AppKey("dashboard")
SESSION = web.RequestKey("session", auth.Session)
FORM = web.RequestKey("form", dict[str, str])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, users: dict[str, auth.User]) -> None:
    """Refuse to serve beyond this machine without anyone able to log in."""
    if not users and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without {auth.USERS_VARIABLE}: anyone who can reach "
            "it would see every job; add users (`worker dashboard hash-password`) or listen "
            "on 127.0.0.1"
        )


class Dashboard:
    """Everything the views share: settings, database, Redis, users, sessions, templates."""

    def __init__(
        self,
        settings: Settings,
        users: dict[str, auth.User],
        *,
        db: Database | None = None,
        redis: Redis | None = None,
        live_interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.users = users
        self._owns_db = db is None
        self.db = db or Database(settings.database_url, min_size=1, max_size=4, name="dashboard")
        self.redis = redis or redis_client(settings)
        self.client = Client(settings, db=self.db)
        self.sessions = auth.Sessions()
        self.live = LiveHub() if live_interval is None else LiveHub(interval=live_interval)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        from worker.dashboard import views

        self.templates.filters.update(views.FILTERS)
        self.templates.globals["static"] = _static_url
        self.runner: web.AppRunner | None = None
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_lock = asyncio.Lock()

    def open(self) -> Dashboard:
        if self._owns_db:
            self.db.open()
        return self

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking database or Redis work off the event loop."""
        return await asyncio.to_thread(fn, *args)

    async def cached(self, name: str, ttl: float, fn: Callable[[], Any]) -> Any:
        """``fn()`` (blocking, run off the loop), reused for ``ttl`` seconds by every viewer."""
        async with self._cache_lock:
            hit = self._cache.get(name)
            if hit is not None and time.monotonic() - hit[0] < ttl:
                return hit[1]
            value = await self.run(fn)
            self._cache[name] = (time.monotonic(), value)
            return value

    def render(self, request: web.Request, template: str, **context: Any) -> web.Response:
        session = request.get(SESSION)
        flash = session.flash if session is not None else []
        page = self.templates.get_template(template).render(
            user=session.user if session else None,
            csrf_token=session.csrf if session else "",
            flash=list(flash),
            path=request.path,
            **context,
        )
        flash.clear()
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    # -- the application ---------------------------------------------------------------------

    def app(self) -> web.Application:
        from worker.dashboard import views

        app = web.Application(
            middlewares=[self._headers, self._authenticate], client_max_size=64 * 1024
        )
        app[STATE] = self
        views.add_routes(app)
        app.router.add_static("/static/", HERE / "static")
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC):
            return await handler(request)
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if request.method in ("GET", "HEAD") and not request.path.startswith("/live/"):
                raise web.HTTPSeeOther(f"/login?{_next(request)}")
            raise web.HTTPForbidden(text="refused: log in first\n")
        request[SESSION] = session
        if request.method not in ("GET", "HEAD"):
            form = {k: str(v) for k, v in (await request.post()).items()}
            csrf.check(request, form, session.csrf)
            request[FORM] = form
        return await handler(request)

    # -- lifetime ----------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen; return the port (useful with ``port=0``)."""
        check_bind(host, self.users)
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=5.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        await self.live.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self.client.close()
        if self._owns_db:
            self.db.close()
        self.redis.close()


def _static_url(name: str) -> str:
    """A static file's URL, with its modification time so a new version is fetched."""
    path = HERE / "static" / name
    return f"/static/{name}?v={int(path.stat().st_mtime)}"


def _next(request: web.Request) -> str:
    from urllib.parse import urlencode

    return urlencode({"next": request.path_qs})


def serve(settings: Settings, host: str, port: int, users: dict[str, auth.User]) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status."""
    install_logging()
    check_bind(host, users)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(settings, host, port, users))
    return 0


async def _serve(settings: Settings, host: str, port: int, users: dict[str, auth.User]) -> int:
    dashboard = Dashboard(settings, users)
    await asyncio.to_thread(dashboard.open)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    real_port = await dashboard.start(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard on http://{shown}:{real_port}", flush=True)
    if not users:
        print(f"no users: set {auth.USERS_VARIABLE} to log in", flush=True)
    await stop.wait()
    await dashboard.stop()
    return 0
