"""An aiohttp server of ours on its own event loop in a daemon thread, on a free port of
127.0.0.1: the code under test reaches it over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class LoopServer:
    """Starts ``start(host, port) -> bound port`` on a new loop; :meth:`stop` awaits ``stop()``."""

    def __init__(
        self,
        start: Callable[[str, int], Awaitable[int]],
        stop: Callable[[], Awaitable[None]],
        name: str,
    ) -> None:
        self._stop = stop
        self.name = name
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            try:
                self.port = await start("127.0.0.1", 0)
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(boot())
            if not failure:
                self.loop.run_forever()
            self.loop.close()

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        ready.wait(30)
        if failure:
            raise RuntimeError(f"{name} did not start: {failure[0]}")
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, coro: Awaitable[Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)  # type: ignore[arg-type]
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
