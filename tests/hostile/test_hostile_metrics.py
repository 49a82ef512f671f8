"""/metrics listens on loopback unless METRICS_HOST says otherwise (issue 22, finding 8): key
names and queue sizes are not for every interface."""

from __future__ import annotations

import socket

import httpx
import pytest

from worker.config import Settings, load_settings
from worker.webhook_server import _start_metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_on(port: int) -> set[str]:
    """The local IPv4 addresses listening on ``port``, from /proc/net/tcp."""
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _settings(settings: Settings, **overrides: object) -> Settings:
    return load_settings(database_url=settings.database_url, _env_file=None, **overrides)


def test_metrics_listen_on_loopback_by_default(settings: Settings) -> None:
    assert settings.metrics_host == "127.0.0.1"
    port = _free_port()
    _start_metrics(_settings(settings, metrics_port=port))
    assert _listening_on(port) == {"127.0.0.1"}
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.2", "0.0.0.0"])
def test_metrics_host_moves_them(settings: Settings, host: str) -> None:
    port = _free_port()
    _start_metrics(_settings(settings, metrics_port=port, metrics_host=host))
    assert _listening_on(port) == {host}
