"""Fixtures for the provider clients: the real local simulator, and a tiny stub for odd shapes.

The simulator (``simulator.testing``) runs once per module in a thread and is reset before every
test. A few answer shapes it cannot be told to produce (an unknown task state, a ``Retry-After``
header on a KIE 429, a non-JSON Telegram error, ...) come from :class:`Stub`, a throwaway
``http.server`` that replays canned answers; each use names the gap it covers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from simulator.config import SimConfig
from simulator.testing import RunningSimulator, start_in_thread
from worker.config import ApiKey
from worker.redaction import clear_secrets

#: Start-up configuration (``reset()`` returns to it): no pacing limits, so a test may poll fast,
#: and renders that take a while, so a fresh task is still in progress.
SIM_START = {
    "seed": 7,
    "kie": {"create_limit": 0, "query_limit": 0, "render_seconds": 30.0, "timeout_seconds": 1.0},
    "openai": {"timeout_seconds": 1.0},
    "telegram": {"timeout_seconds": 1.0},
}

#: A client timeout well under the simulator's injected delay: timeouts cost a fraction of a second.
SHORT_TIMEOUT = 0.3


def make_key(provider: str, secret: str, name: str = "main") -> ApiKey:
    from pydantic import SecretStr

    return ApiKey(provider=provider, name=name, secret=SecretStr(secret))


@dataclass
class Canned:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Stub:
    """An HTTP server answering every request with the next canned answer (the last repeats)."""

    def __init__(self) -> None:
        self.answers: list[Canned] = []
        self.seen: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.seen.append(Seen(self.command, self.path, headers, body))
                answer = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                if answer.delay:
                    threading.Event().wait(answer.delay)
                payload = answer.body
                content_type = "application/json"
                if isinstance(payload, (dict, list)):
                    raw = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    raw = payload.encode()
                    content_type = "text/html"
                else:
                    raw = payload or b""
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(raw)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = _serve

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, *answers: Canned) -> Stub:
        self.answers = list(answers)
        self.seen.clear()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def _stub_server() -> Iterator[Stub]:
    stub = Stub()
    yield stub
    stub.close()


@pytest.fixture
def stub(_stub_server: Stub) -> Stub:
    _stub_server.answer(Canned(500, {"code": 500, "msg": "stub not primed"}))
    return _stub_server


@pytest.fixture(scope="module")
def _simulator() -> Iterator[RunningSimulator]:
    sim = start_in_thread(SimConfig.from_dict(SIM_START))
    yield sim
    sim.stop()


@pytest.fixture
def sim(_simulator: RunningSimulator) -> RunningSimulator:
    _simulator.reset()
    return _simulator


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()
