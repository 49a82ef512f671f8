"""Assembles the simulator into one aiohttp application and serves it.

One process, one event loop, three fake providers on one port: KIE at ``/api/v1/...`` and
``/files/...``, OpenAI at ``/v1/...``, Telegram at ``/bot<token>/...``, plus the ``/_sim`` admin
API. A middleware records every provider call (not admin calls) for ``/_sim/calls`` and
``/_sim/stats``; KIE callbacks go out from here too (``simulator.callbacks``), never recorded as
calls. Access logging is off: a benchmark polls thousands of times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from simulator import (
    admin,
    kie,
    kie_records,
    kie_upload,
    openai,
    telegram,
    telegram_bot,
    telegram_files,
)
from simulator.callbacks import CALLBACKS_KEY, Callbacks
from simulator.config import SimConfig
from simulator.state import CALL_KEY, STATE_KEY, SimState

#: Seconds a stopping server waits for in-flight requests (e.g. a timeout fault asleep).
SHUTDOWN_TIMEOUT = 0.5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def record_calls(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record each provider request with the HTTP status it was finally answered with."""
    route_name = getattr(request.match_info.route, "name", None)
    if not route_name or route_name.startswith("admin."):
        return await handler(request)
    service, _, endpoint = route_name.partition(".")
    if service == "telegram":
        endpoint = request.match_info.get("method", "")
    state = request.app[STATE_KEY]
    call = state.start_call(service, endpoint, request.method)
    request[CALL_KEY] = call
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        state.finish_call(call, exc.status)
        raise
    except asyncio.CancelledError:
        state.finish_call(call, 499)  # the client went away (nginx's "client closed request")
        raise
    except Exception:
        state.finish_call(call, 500)
        raise
    state.finish_call(call, response.status)
    return response


def build_app(config: SimConfig) -> web.Application:
    """The whole simulator as an aiohttp application, starting from ``config``."""
    # Uploads are streamed (see telegram.py); this only bounds JSON and form bodies.
    app = web.Application(middlewares=[record_calls], client_max_size=4 * 1024 * 1024)
    state = SimState(config)
    app[STATE_KEY] = state
    app[CALLBACKS_KEY] = callbacks = Callbacks(state, kie_records.callback_body)
    app[telegram_bot.BOT_KEY] = telegram_bot.BotChannel()
    app.on_cleanup.append(callbacks.close)
    # telegram_files (getFile, file downloads) before telegram's catch-all /bot<token>/<method>
    app.add_routes([*kie.routes(), *kie_upload.routes(), *openai.routes()])
    app.add_routes([*telegram_files.routes(), *telegram.routes(), *admin.routes()])
    app.add_routes(telegram_bot.routes())  # the user's side of a bot's chat (/_sim/telegram/...)
    return app


def base_url(host: str, port: int) -> str:
    """``http://host:port`` with IPv6 hosts bracketed; a wildcard host becomes loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def start(config: SimConfig, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start listening; returns the runner (to ``cleanup()`` later) and the real base URL."""
    runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    real_port = int(runner.addresses[0][1])
    return runner, base_url(host, real_port)


def serve(host: str, port: int, config: SimConfig) -> None:
    """Serve until SIGINT or SIGTERM; prints ``simulator listening on <url>`` once listening.

    With ``port=0`` the system picks a free port and the printed line carries the real one, so a
    parent process can read it from stdout.
    """
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, config))


async def _serve(host: str, port: int, config: SimConfig) -> None:
    runner, url = await start(config, host, port)
    print(f"simulator listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
