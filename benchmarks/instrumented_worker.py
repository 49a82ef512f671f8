"""``worker run`` with its CPU charged to the library each thread is in (for benchmarks only).

    python -m benchmarks.instrumented_worker run --threads 8 ...   # same arguments as worker

Before the worker starts, the entry points of every library a step goes through are wrapped
(:data:`PARTS`). Each wrapped call charges the CPU its thread spends inside it,
``time.thread_time()``, to its part, less the CPU of the wrapped calls of other parts nested
inside it (a library's wrapped functions calling one another count as one call). Every
CPU second spent inside some wrapped call is therefore counted once, in the innermost part.
Time a thread spends waiting for the GIL, the network or a lock is not CPU and is not counted,
which is where this differs from a sampling profiler's wall-clock view. At exit the totals go to
``$ATTRIBUTION_DIR/<pid>.json``, with the process's own CPU for comparison.

The wrappers cost CPU too, about 2 µs a call: ``benchmarks.attribution`` reports the overhead.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: part → the functions charged to it, as "module:Class.method" or "module:function".
PARTS: dict[str, tuple[str, ...]] = {
    "psycopg": (
        "psycopg:Connection.execute",
        "psycopg:Cursor.execute",
        "psycopg:Connection.commit",
        "psycopg_pool:ConnectionPool.getconn",
        "psycopg_pool:ConnectionPool.putconn",
    ),
    "redis-py": (
        "redis.client:Redis.execute_command",
        "redis.client:Pipeline.execute",
        "redis.commands.core:Script.__call__",
    ),
    "httpx": ("httpx:Client.send",),
    "openai SDK": ("openai._base_client:SyncAPIClient.request", "httpx2:Client.send"),
    "dramatiq worker thread": ("dramatiq.worker:WorkerThread.process_message",),
    "dramatiq consumer threads": (
        "dramatiq.worker:ConsumerThread.handle_message",
        "dramatiq.worker:ConsumerThread.handle_delayed_messages",
        "dramatiq.worker:ConsumerThread.post_process_message",
        "dramatiq.brokers.redis:_RedisConsumer.__next__",
    ),
    "dramatiq enqueue": ("dramatiq.brokers.redis:RedisBroker.enqueue",),
    "json": ("json:dumps", "json:loads"),
    "logging": ("logging:Logger._log",),
    "ours: step runtime": ("worker.runtime:Runtime.execute",),
    "ours: key pool": ("worker.keys:KeyPool.acquire", "worker.keys:KeyPool.acquire_named"),
    "ours: KIE client": (
        "jobs.video.kie:KieClient.create_task",
        "jobs.video.kie:KieClient.get_task",
    ),
    "ours: prompt client": ("jobs.video.prompt:PromptGenerator.generate",),
    "ours: download": ("worker.storage:Storage.download",),
    "ours: Telegram client": (
        "worker.telegram:TelegramNotifier.send_file",
        "worker.telegram:TelegramNotifier.send_message",
    ),
}


class Ledger:
    """CPU seconds and calls per part, from every thread of this process."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _charge(self, part: str, seconds: float, calls: int) -> None:
        with self._lock:
            self.seconds[part] = self.seconds.get(part, 0.0) + seconds
            self.calls[part] = self.calls.get(part, 0) + calls

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def charged(*args: Any, **kwargs: Any) -> Any:
            stack: list[list[Any]] | None = getattr(self._local, "stack", None)
            if stack is None:
                stack = self._local.stack = []
            elif stack and stack[-1][0] == part:  # one library calling itself: one call
                return fn(*args, **kwargs)
            now = time.thread_time()
            if stack:  # pause the enclosing part
                outer = stack[-1]
                self._charge(outer[0], now - outer[1], 0)
            stack.append([part, now])
            try:
                return fn(*args, **kwargs)
            finally:
                now = time.thread_time()
                _, began = stack.pop()
                self._charge(part, now - began, 1)
                if stack:  # resume it
                    stack[-1][1] = now

        return charged

    def install(self, parts: dict[str, tuple[str, ...]]) -> list[str]:
        """Wrap every function in ``parts``; return those that could not be found."""
        missing = []
        for part, targets in parts.items():
            for target in targets:
                module_name, _, path = target.partition(":")
                *owner_path, name = path.split(".")
                try:
                    owner: Any = importlib.import_module(module_name)
                    for attr in owner_path:
                        owner = getattr(owner, attr)
                    setattr(owner, name, self.wrap(part, getattr(owner, name)))
                except (ImportError, AttributeError):
                    missing.append(target)
        return missing

    def dump(self, path: Path, missing: list[str]) -> None:
        times = os.times()
        path.write_text(
            json.dumps(
                {
                    "seconds": self.seconds,
                    "calls": self.calls,
                    "process_cpu_seconds": times.user + times.system,
                    "missing": missing,
                }
            )
        )


def main() -> None:
    ledger = Ledger()
    missing = ledger.install(PARTS)
    out = Path(os.environ["ATTRIBUTION_DIR"]) / f"{os.getpid()}.json"
    atexit.register(ledger.dump, out, missing)

    from worker.cli.main import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
