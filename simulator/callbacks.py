"""KIE callbacks: the POST to a task's ``callBackUrl`` when the task ends, with injectable faults.

As documented, the body is recordInfo's answer (``{"code": 200, "msg": "success", "data": ...}``),
a callback may arrive more than once, and recordInfo stays the authority. With a webhook HMAC key
each POST carries ``X-Webhook-Timestamp`` (unix seconds) and ``X-Webhook-Signature``, the standard
base64 of HMAC-SHA256(key, taskId + "." + timestamp).

Timing. Task states come from the clock (see ``simulator.state``), so nothing runs when a task
ends; a task that asked for a callback gets one ``loop.call_later`` handle for that moment (plus
``callback_delay_seconds``): thousands of renders in flight cost thousands of small handles, not
thousands of sleeping coroutines. Only when a handle fires does a delivery start, as a background
task, so a receiver that is down or slow never slows the simulator's own endpoints. Handles and
deliveries are kept in ``SimState`` and cancelled by ``reset``; each also carries the reset epoch
it was made in and sends and records nothing once the epoch has moved on.

Retries. KIE does not document what it does when a callback POST fails. The simulator's choice:
after a non-2xx answer, a connection error or a timeout, up to ``callback_retries`` more attempts,
1 s, 2 s, 4 s... apart (at most 30 s). Receivers must not rely on it: KIE may not retry at all.

Faults, drawn with the seeded dice when the callback is due (``lost``, ``duplicate``, per task) or
per POST (``bad_signature``). Callbacks are outbound, so they are never recorded as provider calls
nor hit by the request-level faults, and nothing is logged per callback (benchmarks send thousands).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from simulator.state import SimState, Task

#: Builds the body of a task's callback at a given time (``simulator.kie_records.callback_body``);
#: passed in by the server, which keeps this module free of what KIE's bodies look like.
BodyBuilder = Callable[[SimState, Task, float], dict[str, Any]]

#: First wait between attempts, doubled after each failure, capped.
RETRY_FIRST_WAIT_SECONDS = 1.0
RETRY_MAX_WAIT_SECONDS = 30.0
#: Range of the wait before a duplicate callback.
DUPLICATE_WAIT_SECONDS = (0.2, 1.0)
#: Connections open at once to all receivers; more deliveries wait for a free one.
MAX_CONNECTIONS = 256
#: Longest ``error`` text recorded for a failed attempt.
MAX_ERROR_CHARS = 200


def signature(key: str, task_id: str, timestamp: str) -> str:
    """``X-Webhook-Signature``: base64 of HMAC-SHA256(key, ``taskId + "." + timestamp``)."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def retry_wait(failed_attempts: int) -> float:
    """Seconds to wait after the n-th failed attempt: 1, 2, 4... at most 30."""
    return min(RETRY_FIRST_WAIT_SECONDS * 2.0 ** (failed_attempts - 1), RETRY_MAX_WAIT_SECONDS)


class Callbacks:
    """Schedules and delivers the callbacks of one application; owns its HTTP client session."""

    def __init__(self, state: SimState, body: BodyBuilder) -> None:
        self.state = state
        self._body = body
        self._session: aiohttp.ClientSession | None = None

    # --- scheduling ------------------------------------------------------------------------------

    def schedule(self, task: Task) -> None:
        """Call back when ``task`` ends (now, if it already has), replacing any planned callback.

        Does nothing for a task without ``callBackUrl`` or while callbacks are switched off.
        """
        state = self.state
        cfg = state.config.kie
        self.cancel(task.task_id)
        if task.callback_url is None or not cfg.callbacks:
            return
        wait = max(task.ends_at() - time.time(), 0.0) + cfg.callback_delay_seconds
        loop = asyncio.get_running_loop()
        state.callback_timers[task.task_id] = loop.call_later(
            wait, self._due, task.task_id, state.epoch
        )

    def cancel(self, task_id: str) -> None:
        """Forget the planned callback of a task (one already being delivered goes on)."""
        handle = self.state.callback_timers.pop(task_id, None)
        if handle is not None:
            handle.cancel()

    def _due(self, task_id: str, epoch: int) -> None:
        """The timer of a task's callback fired: draw the per-task faults, start the delivery."""
        state = self.state
        if epoch != state.epoch:
            return
        state.callback_timers.pop(task_id, None)
        task = state.tasks.get(task_id)
        cfg = state.config.kie
        if task is None or task.callback_url is None or not cfg.callbacks:
            return
        if state.roll(cfg.rate_callback_lost):
            state.start_callback(task, task.callback_url, 0, fault="lost")
            return
        duplicate: float | None = None
        if state.roll(cfg.rate_callback_duplicate):
            # Timing is cosmetic: drawn from ``style`` so it never shifts the fault sequence.
            duplicate = state.style.uniform(*DUPLICATE_WAIT_SECONDS)
        # The timer may fire a hair before the end as the wall clock sees it; the body must not.
        now = max(time.time(), task.ends_at())
        body = json.dumps(self._body(state, task, now)).encode()  # as recordInfo encodes it
        job = asyncio.get_running_loop().create_task(
            self._deliver(task, task.callback_url, body, epoch, duplicate)
        )
        state.callback_jobs.add(job)
        job.add_done_callback(state.callback_jobs.discard)

    # --- delivery --------------------------------------------------------------------------------

    async def _deliver(
        self, task: Task, url: str, body: bytes, epoch: int, duplicate: float | None
    ) -> None:
        """POST until an attempt is answered 2xx or the retries run out; then the duplicate."""
        attempt = 1
        delivered = await self._post(task, url, body, epoch, attempt, None)
        while delivered is False and attempt <= self.state.config.kie.callback_retries:
            await asyncio.sleep(retry_wait(attempt))
            attempt += 1
            delivered = await self._post(task, url, body, epoch, attempt, None)
        if delivered and duplicate is not None:
            await asyncio.sleep(duplicate)
            await self._post(task, url, body, epoch, attempt + 1, "duplicate")

    async def _post(
        self, task: Task, url: str, body: bytes, epoch: int, attempt: int, fault: str | None
    ) -> bool | None:
        """One recorded POST: True if answered 2xx, False if not, None if it was not sent."""
        state = self.state
        cfg = state.config.kie
        if epoch != state.epoch or not cfg.callbacks:
            return None
        headers = {"Content-Type": "application/json"}
        key = cfg.webhook_hmac_key
        if key is not None:
            timestamp = str(int(time.time()))
            headers["X-Webhook-Timestamp"] = timestamp
            if state.roll(cfg.rate_callback_bad_signature):
                fault = "bad_signature"
                headers["X-Webhook-Signature"] = base64.b64encode(secrets.token_bytes(32)).decode()
            else:
                headers["X-Webhook-Signature"] = signature(key, task.task_id, timestamp)
        record = state.start_callback(task, url, attempt, fault=fault, signed=key is not None)
        status: int | None = None
        error: str | None = None
        try:
            async with self._client().post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=cfg.callback_timeout_seconds),
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            error = "timeout"
        except Exception as exc:  # whatever the receiver does, it is a failed attempt, not a crash
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        state.finish_callback(record, status, error)
        return status is not None and 200 <= status < 300

    def _client(self) -> aiohttp.ClientSession:
        """The application's session, created on first use (inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            )
        return self._session

    # --- lifetime --------------------------------------------------------------------------------

    async def close(self, app: web.Application | None = None) -> None:
        """Cancel everything pending and close the session (an ``on_cleanup`` handler)."""
        jobs = list(self.state.callback_jobs)
        self.state.cancel_callbacks()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


CALLBACKS_KEY = web.AppKey("simulator_callbacks", Callbacks)


def get_callbacks(request: web.Request) -> Callbacks:
    return request.app[CALLBACKS_KEY]
