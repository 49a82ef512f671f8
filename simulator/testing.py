"""Run the simulator inside a test process, or drive one that runs elsewhere.

``start_in_thread()`` gives a real HTTP server on its own event loop in a daemon thread, so code
under test talks to it over sockets exactly as it would to the real providers. Every helper on
``RunningSimulator`` is an HTTP call to the ``/_sim`` admin API, which is why
``RunningSimulator.connect(url)`` works the same against ``python -m simulator`` in another process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from aiohttp import web

from simulator.config import SimConfig
from simulator.server import start

#: Seconds to wait for the server thread to start or stop.
THREAD_TIMEOUT = 10.0


class RunningSimulator:
    """A handle on a running simulator: its URLs and the admin helpers.

    Use it as a context manager (or call ``stop()``) to shut down a simulator this process started;
    ``stop()`` on a connected (foreign) simulator only closes the HTTP client.
    """

    def __init__(self, url: str, *, _stop: Callable[[], None] | None = None) -> None:
        self.url = url.rstrip("/")
        self._stop = _stop
        self._http = httpx.Client(base_url=self.url, timeout=10.0)

    @classmethod
    def connect(cls, url: str, wait_seconds: float = 0.0) -> RunningSimulator:
        """A handle on a simulator already running at ``url``.

        With ``wait_seconds``, poll ``/_sim/health`` until it answers (a freshly spawned process).
        """
        sim = cls(url)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                sim.health()
                return sim
            except httpx.HTTPError:
                if time.monotonic() >= deadline:
                    sim.close()
                    raise
                time.sleep(0.05)

    # --- URLs to give the code under test --------------------------------------------------------

    @property
    def kie_url(self) -> str:
        """``KIE_BASE_URL``: the paths ``/api/v1/...`` hang off it."""
        return self.url

    @property
    def openai_url(self) -> str:
        """``OPENAI_BASE_URL`` (with ``/v1``, as the SDK expects)."""
        return f"{self.url}/v1"

    @property
    def telegram_url(self) -> str:
        """``TELEGRAM_API_URL``: requests go to ``<telegram_url>/bot<token>/<method>``."""
        return self.url

    # --- admin helpers ---------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        response = self._http.get(path, params=query)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: Any = None) -> Any:
        response = self._http.post(path, json=body)
        if response.status_code == 400:
            raise ValueError(response.json().get("error", response.text))
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        return bool(self._get("/_sim/health")["ok"])

    def reset(self) -> None:
        """Back to the start-up configuration; forget tasks, calls, callbacks and messages."""
        self._post("/_sim/reset")

    def config(self) -> dict[str, Any]:
        """The live configuration as a dict."""
        result: dict[str, Any] = self._get("/_sim/config")
        return result

    def configure(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Deep-merge ``patch`` into the live configuration; returns the new one.

        Raises ``ValueError`` with the simulator's explanation if the patch is invalid.
        """
        result: dict[str, Any] = self._post("/_sim/config", patch)
        return result

    def calls(
        self, service: str | None = None, endpoint: str | None = None, since: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded provider calls, oldest first (see ``simulator.state.Call``)."""
        result: list[dict[str, Any]] = self._get(
            "/_sim/calls", service=service, endpoint=endpoint, since=since
        )
        return result

    def callbacks(
        self, task_id: str | None = None, since: int | None = None
    ) -> list[dict[str, Any]]:
        """KIE callback POSTs and lost callbacks, oldest first (``simulator.state.Callback``)."""
        result: list[dict[str, Any]] = self._get("/_sim/callbacks", task_id=task_id, since=since)
        return result

    def calls_for_model(self, model: str, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Recorded KIE calls naming ``model`` (``endpoint``: e.g. ``createTask``)."""
        result: list[dict[str, Any]] = self._get(
            "/_sim/calls", service="kie", endpoint=endpoint, model=model
        )
        return result

    def models(self) -> dict[str, dict[str, Any]]:
        """Every KIE model by name: schema, price, ``state`` and counters (``GET /_sim/models``)."""
        entries: list[dict[str, Any]] = self._get("/_sim/models")
        return {entry["model"]: entry for entry in entries}

    def set_model_state(self, model: str, state: str | None) -> dict[str, Any]:
        """Make KIE answer ``model`` as ``live``, ``paused``, ``unknown`` or ``withdrawn`` from
        now on (``None``: back to the catalog's state); returns the model's entry."""
        result: dict[str, Any] = self._post(f"/_sim/models/{model}", {"state": state})
        return result

    def pause_model(self, model: str) -> dict[str, Any]:
        """KIE answers ``model`` with 500 "This interface is temporarily paused"."""
        return self.set_model_state(model, "paused")

    def resume_model(self, model: str) -> dict[str, Any]:
        """``model`` is live again."""
        return self.set_model_state(model, "live")

    def create_calls(self, model: str) -> int:
        """Create calls (createTask or Veo generate) that named ``model`` since the last reset,
        whatever they were answered: what a paused model cost the client in calls."""
        entry = self.models().get(model)
        return int(entry["create_calls"]) if entry is not None else 0

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/_sim/stats")
        return result

    def messages(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Telegram messages delivered (to ``chat_id``), in order."""
        result: list[dict[str, Any]] = self._get("/_sim/messages", chat_id=chat_id)
        return result

    # --- Telegram: a user in a bot's chat (simulator.telegram_bot) ----------------------------

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = None,
        first_name: str | None = None,
    ) -> dict[str, Any]:
        """The user sends ``text`` to the bot (their private chat unless ``chat_id``); returns
        the update the bot will get from ``getUpdates``."""
        body = {"user_id": user_id, "text": text, "chat_id": chat_id}
        body |= {"language_code": language_code, "first_name": first_name}
        result: dict[str, Any] = self._post(
            "/_sim/telegram/updates/message", {k: v for k, v in body.items() if v is not None}
        )
        return result

    def send_photo(
        self,
        user_id: int,
        data: bytes,
        *,
        chat_id: int | None = None,
        language_code: str | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """The user sends ``data`` as a photo: ``message.photo`` lists its sizes, largest
        (the bytes as sent) last, each a file ``getFile`` finds; returns the update."""
        params = {"user_id": user_id, "chat_id": chat_id, "language_code": language_code}
        params |= {"caption": caption}
        response = self._http.post(
            "/_sim/telegram/updates/photo",
            params={k: v for k, v in params.items() if v is not None},
            content=data,
        )
        if response.status_code == 400:
            raise ValueError(response.json().get("error", response.text))
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """The user presses a button with ``data`` on the bot's message ``message_id`` (any
        ``data`` of 1 to 64 bytes, as a modified client could send); returns the update.
        ``ValueError`` for longer data or a message the bot never sent to that chat."""
        body = {"user_id": user_id, "message_id": message_id, "data": data, "chat_id": chat_id}
        body["language_code"] = language_code
        result: dict[str, Any] = self._post(
            "/_sim/telegram/updates/callback_query",
            {k: v for k, v in body.items() if v is not None},
        )
        return result

    def chat(self, chat_id: int | str) -> dict[str, Any]:
        """The chat's transcript: ``sent`` (every message the bot or the worker sent there, in
        order: ``kind``, ``text``, ``caption``, current ``reply_markup``, ``edits``),
        ``received`` (the user's updates) and ``callback_queries`` (each press: ``data``,
        ``answered``, ``answer_text``, ``show_alert``)."""
        result: dict[str, Any] = self._get(f"/_sim/telegram/chats/{chat_id}")
        return result

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates the bot has not confirmed with a ``getUpdates`` offset yet."""
        result: list[dict[str, Any]] = self._get("/_sim/telegram/updates")
        return result

    def tasks(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/_sim/tasks")
        return result

    def task(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/_sim/tasks/{task_id}")
        return result

    def finish_task(self, task_id: str) -> dict[str, Any]:
        """Make the task succeed now."""
        result: dict[str, Any] = self._post(f"/_sim/tasks/{task_id}/finish")
        return result

    def fail_task(
        self,
        task_id: str,
        fail_code: str = "500",
        fail_msg: str = "internal error, please try again later",
    ) -> dict[str, Any]:
        """Make the task fail now with this failCode and failMsg."""
        result: dict[str, Any] = self._post(
            f"/_sim/tasks/{task_id}/fail", {"fail_code": fail_code, "fail_msg": fail_msg}
        )
        return result

    # --- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def stop(self) -> None:
        """Stop the server if this process started it, and close the admin client."""
        self.close()
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningSimulator({self.url!r})"


def start_in_thread(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Start the simulator on its own event loop in a daemon thread; returns once it listens."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    outcome: dict[str, Any] = {}

    async def boot() -> None:
        try:
            outcome["runner"], outcome["url"] = await start(config or SimConfig(), host, port)
        except BaseException as exc:
            outcome["error"] = exc
            raise
        finally:
            ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(boot())
        except BaseException:
            loop.close()
            return
        loop.run_forever()
        # Requests still asleep in a timeout fault outlive the server's shutdown grace period.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name="simulator", daemon=True)
    thread.start()
    if not ready.wait(THREAD_TIMEOUT):
        raise RuntimeError("the simulator did not start in time")
    if "error" in outcome:
        thread.join(THREAD_TIMEOUT)
        raise RuntimeError(f"the simulator could not start: {outcome['error']}") from outcome[
            "error"
        ]
    runner: web.AppRunner = outcome["runner"]

    def stop() -> None:
        future = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)
        try:
            future.result(THREAD_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(THREAD_TIMEOUT)

    return RunningSimulator(outcome["url"], _stop=stop)
