"""`worker webhooks`: the HTTP endpoint providers call back, what systemd's ``worker-webhooks``
runs behind the operator's HTTPS proxy.

Routes, one pair per webhook a job kind declares (``JobKind.webhooks_module``):

* ``POST /callbacks/<kind>/<name>``: a callback. The kind's webhook reads it
  (:class:`worker.webhooks.Webhook`), :func:`worker.webhooks.wake` makes its job due now, and a
  wake-up message goes to the kind's queue. 200 ``{"ok": true}`` for every callback read,
  whatever it woke (a caller who guessed a job id learns nothing); 400 or 401 with
  ``{"ok": false, "error": ...}`` for a request refused; 503 when PostgreSQL does not answer
  (the provider may send it again, and the safety-net poll finds the task if it does not).
* ``GET /callbacks/<kind>/<name>``: 200 ``{"webhook": "<kind>/<name>", "signed": ...}``, so that
  `worker doctor` can check through the public URL that the proxy routes here.
* ``GET /healthz``: 200 when PostgreSQL and Redis answer, else 503.

Hostile input: any exception while reading a request (its body, its query, the webhook's own
reading) is a 400, never a 500 with a traceback; an input PostgreSQL refuses (a NUL, text it
cannot encode) is a 400 too, not a 503. A connection must send its headers within
:data:`HEADER_TIMEOUT_SECONDS` of opening (and an idle keep-alive connection is closed after as
long), its body within :data:`BODY_TIMEOUT_SECONDS` (else 408); past
:data:`MAX_CONNECTIONS` open connections a new one is answered 503 and closed at once, so a
flood of idle connections cannot exhaust the file descriptors (``LimitNOFILE=`` in the unit is
well above it). Warnings go through a limiter keyed on the route and a fixed set of reasons
(:data:`WARN_REASONS`), so a flood writes one line per reason every
:data:`WARN_EVERY_SECONDS`, saying how many it left out.

One process serves a host; it holds nothing but a small connection pool, so run two behind the
proxy for redundancy if you like. Wake-ups go through a background sender (the bot's), so a
request never waits on Redis; if Redis is down the job is due anyway and the maintenance loop
re-sends its wake-up. SIGTERM: stop listening, let requests in flight finish, hand the last
wake-ups to Redis, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import psycopg
from aiohttp import web

from worker import sdnotify
from worker.broker import make_broker, redis_client
from worker.config import Settings
from worker.db import AsyncDatabase
from worker.dispatch import Dispatcher
from worker.kinds import JobKind, all_kinds
from worker.metrics import CALLBACKS
from worker.redaction import install_logging, redact
from worker.status import WakeOutcome
from worker.webhooks import Webhook, WebhookRejected, WebhookRequest, path_of, wake

log = logging.getLogger("worker.webhooks")

#: Largest callback body accepted (a provider's is a few KiB).
MAX_BODY_BYTES = 1024 * 1024
#: How long start-up waits for PostgreSQL before giving up (as `worker run`).
STARTUP_WAIT = 30.0
#: Seconds a stopping server gives requests in flight (a wake may wait on a running step).
SHUTDOWN_SECONDS = 12.0
#: At most one warning per reason in this many seconds (a flood of forged requests).
WARN_EVERY_SECONDS = 10.0
#: A connection's request headers must have arrived this long after it opened (or after its
#: previous answer, on a keep-alive connection); else it is closed.
HEADER_TIMEOUT_SECONDS = 10.0
#: A request's body must have arrived this long after its headers; else 408.
BODY_TIMEOUT_SECONDS = 10.0
#: Connections held open at most; one more is answered 503 and closed.
MAX_CONNECTIONS = 512
#: Why a warning is logged: the limiter's keys (with the route), a fixed set.
Reason = Literal["refused", "unreadable", "bad-input", "database", "bug"]
WARN_REASONS: tuple[Reason, ...] = ("refused", "unreadable", "bad-input", "database", "bug")
#: What a client over :data:`MAX_CONNECTIONS` gets before the connection closes.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 46\r\nConnection: close\r\n\r\n"
    b'{"ok": false, "error": "too many connections"}'
)


class _ProtocolLog(logging.Filter):
    """aiohttp's own log of requests that are not valid HTTP (a control character in a header,
    a broken request line): it logs each at ERROR with a traceback. Our handler never raises,
    so those are all the client's doing: one WARNING line, without the traceback, every
    :data:`WARN_EVERY_SECONDS`, saying how many were left out."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -WARN_EVERY_SECONDS
        self._skipped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        now = time.monotonic()
        if now - self._last < WARN_EVERY_SECONDS:
            self._skipped += 1
            return False
        more = f" ({self._skipped:,} more like it not shown)" if self._skipped else ""
        self._last, self._skipped = now, 0
        error = record.exc_info[1] if record.exc_info else None
        what = redact((str(error).splitlines() or [""])[0])[:200] if error is not None else ""
        record.msg = f"a request that is not valid HTTP was answered 400: {what}{more}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: aiohttp's request-handling logger for this server (see :class:`_ProtocolLog`).
http_log = logging.getLogger("worker.webhooks.http")
http_log.addFilter(_ProtocolLog())


class _Busy(asyncio.Protocol):
    """A connection over the cap: answered 503 and closed, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


@dataclass(frozen=True)
class Route:
    kind: JobKind
    hook: Webhook

    @property
    def label(self) -> str:
        return f"{self.kind.name}/{self.hook.name}"


def routes_of(kinds: list[JobKind]) -> list[Route]:
    return [Route(kind, hook) for kind in kinds for hook in kind.webhooks()]


class WebhookServer:
    """The application and what it needs: a small async pool and a wake-up sender."""

    def __init__(
        self,
        settings: Settings,
        kinds: list[JobKind] | None = None,
        *,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.routes = routes_of(kinds if kinds is not None else all_kinds())
        self.db = AsyncDatabase(
            settings.database_url,
            min_size=1,
            max_size=max(4, settings.db_pool_max),
            name="webhooks",
        )
        self.broker = make_broker(settings)
        self.redis = redis_client(settings)
        self.dispatcher = Dispatcher(self.broker, backoff_seconds=2.0, background=True)
        #: (route label, reason) → when last logged, how many left out since
        self._warned: dict[tuple[str, Reason], tuple[float, int]] = {}
        self.runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    # -- the application ----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for route in self.routes:
            path = path_of(route.kind, route.hook)
            app.router.add_post(path, self._callback_handler(route))
            app.router.add_get(path, self._probe_handler(route))
        app.router.add_get("/healthz", self.healthz)
        return app

    def _callback_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self.callback(route, request)

        return handle

    def _probe_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def probe(_request: web.Request) -> web.Response:
            return web.json_response(
                {"webhook": route.label, "signed": route.hook.signed(self.settings)}
            )

        return probe

    async def callback(self, route: Route, request: web.Request) -> web.Response:
        """Read, wake, answer. Never raises: every request gets an answer and a count."""
        try:
            body = await asyncio.wait_for(request.read(), self.body_timeout)
        except TimeoutError:
            self._count(route, "rejected")
            self._warn(route, "unreadable", "a callback's body did not arrive in time")
            response = web.json_response(
                {"ok": False, "error": "the body did not arrive in time"}, status=408
            )
            response.force_close()
            return response
        except web.HTTPException:
            raise  # 413: the body is over MAX_BODY_BYTES
        except Exception as exc:  # a reset connection, a broken chunked encoding...
            self._count(route, "rejected")
            self._warn(route, "unreadable", f"a callback's body cannot be read: {exc!r}")
            return _refused(400, "the request cannot be read")
        try:
            incoming = WebhookRequest(
                headers={k.lower(): v for k, v in request.headers.items()},
                query=dict(request.query),
                body=body,
                received_at=time.time(),
            )
            w = route.hook.read(incoming, self.settings)
        except WebhookRejected as exc:
            self._count(route, "rejected")
            self._warn(route, "refused", f"a callback refused ({exc.status}): {exc.reason}")
            return _refused(exc.status, exc.reason)
        except Exception as exc:  # RecursionError, ValueError...: the input is bad, not us
            self._count(route, "rejected")
            self._warn(route, "unreadable", f"a callback cannot be read: {type(exc).__name__}")
            return _refused(400, "the request cannot be read")
        try:
            outcome = await wake(self.db, route.kind, w)
        except (psycopg.DataError, ValueError, UnicodeError) as exc:
            # PostgreSQL (or psycopg) refuses the callback's text: a NUL, a lone surrogate.
            self._count(route, "rejected")
            self._warn(route, "bad-input", f"a callback cannot be stored: {type(exc).__name__}")
            return _refused(400, "the callback holds text that cannot be stored")
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self._count(route, "error")
            self._warn(route, "database", f"callback for job {w.job_id} not handled: {exc}")
            return web.json_response(
                {"ok": False, "error": "the database is not available; send it again later"},
                status=503,
            )
        except Exception as exc:
            self._count(route, "error")
            self._warn(route, "bug", f"callback for job {w.job_id} failed: {exc!r}")
            return _refused(500, "the callback could not be handled; send it again later")
        if outcome is WakeOutcome.WOKEN:
            self.dispatcher.send(route.kind.queue, w.job_id, actor=route.kind.actor(w.step))
        self._count(route, outcome)
        log.debug("%s callback for job %s: %s", route.label, w.job_id, outcome)
        return web.json_response({"ok": True})

    async def healthz(self, _request: web.Request) -> web.Response:
        problems = await self.problems()
        status = 200 if not problems else 503
        return web.json_response({"ok": not problems, "problems": problems}, status=status)

    async def problems(self) -> list[str]:
        """What is wrong now: PostgreSQL or Redis not answering (empty: healthy)."""
        found = []
        try:
            async with self.db.pool.connection(timeout=5.0) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            found.append(f"PostgreSQL does not answer ({redact(exc)})")
        try:
            await asyncio.to_thread(self.redis.ping)
        except Exception as exc:
            found.append(f"Redis does not answer ({redact(exc)})")
        return found

    def _count(self, route: Route, outcome: str) -> None:
        CALLBACKS.labels(kind=route.kind.name, webhook=route.hook.name, outcome=outcome).inc()

    def _warn(self, route: Route, reason: Reason, message: str) -> None:
        """Log ``message`` unless this route's ``reason`` was logged in the last
        :data:`WARN_EVERY_SECONDS`; the limiter holds one entry per route and reason."""
        now = time.monotonic()
        key = (route.label, reason)
        last, skipped = self._warned.get(key, (-WARN_EVERY_SECONDS, 0))
        if now - last < WARN_EVERY_SECONDS:
            self._warned[key] = (last, skipped + 1)
            return
        self._warned[key] = (now, 0)
        more = f" ({skipped:,} more like it not shown)" if skipped else ""
        log.warning("%s: %s%s", route.label, redact(message)[:500], more)

    # -- lifetime -------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Open the pool (waiting for PostgreSQL), listen; return the port (0 picks one)."""
        await self.db.open(wait=True, timeout=STARTUP_WAIT)
        # keepalive_timeout closes a connection that has not sent a whole request's headers
        # this long after it opened or after its last answer (aiohttp arms it at connect).
        self.runner = web.AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_SECONDS,
            keepalive_timeout=self.header_timeout,
            # after an early answer (408, 413) aiohttp reads what is left of the body this long
            lingering_time=1.0,
            logger=http_log,
        )
        await self.runner.setup()
        handlers = self.runner.server
        assert handlers is not None

        def connection() -> asyncio.BaseProtocol:
            if len(handlers.connections) >= self.max_connections:
                return _Busy()
            return handlers()

        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(connection, host, port)
        return int(self._listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, finish requests in flight, send the last wake-ups, close."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await asyncio.to_thread(self.dispatcher.close, 5.0)
        await self.db.close()
        self.broker.close()
        self.redis.close()


def _refused(status: int, reason: str) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=status)


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status (0 after a clean stop)."""
    install_logging()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(settings, host, port))
    return 0


async def _serve(settings: Settings, host: str, port: int) -> int:
    server = WebhookServer(settings)
    if not server.routes:
        log.error("no job kind declares a webhook: nothing to serve")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    real_port = await server.start(host, port)
    paths = ", ".join(path_of(r.kind, r.hook) for r in server.routes)
    log.info("webhooks listening on %s:%d (%s)", host, real_port, paths)
    print(f"webhooks listening on http://{host}:{real_port}", flush=True)
    _start_metrics(settings)
    sdnotify.notify("READY=1", f"STATUS=serving {paths}")
    watchdog = asyncio.create_task(_watchdog(server, stop))
    await stop.wait()
    sdnotify.notify("STOPPING=1", "STATUS=stopping")
    log.info("stopping: finishing the callbacks in flight")
    watchdog.cancel()
    await server.stop()
    return 0


async def _watchdog(server: WebhookServer, stop: asyncio.Event) -> None:
    """Under a systemd watchdog, ping it while PostgreSQL and Redis answer."""
    interval = sdnotify.watchdog_interval()
    if not interval:
        return
    while not stop.is_set():
        problems = await server.problems()
        if problems:
            text = redact("; ".join(problems))
            log.warning("unhealthy, not pinging the watchdog: %s", text)
            sdnotify.notify(f"STATUS=unhealthy: {text}")
        else:
            sdnotify.notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _start_metrics(settings: Settings) -> None:
    """/metrics on METRICS_PORT itself: `worker run --instance N` takes METRICS_PORT + N."""
    if not settings.metrics_port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except OSError as exc:  # e.g. a `worker run` without --instance holds METRICS_PORT + 0
        log.warning("metrics not served on :%d: %s", settings.metrics_port, exc)
        return
    log.info("metrics on :%d", settings.metrics_port)
