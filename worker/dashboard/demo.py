"""`worker demo --dashboard`: the demo's jobs in the dashboard, with one-time credentials.

After the demo's summary, :func:`serve_until_interrupted` starts `worker dashboard` on a free
loopback port with a single admin whose password is made up for this run (it is printed, and
lives only in that process's environment), prints the address and the credentials, and keeps
it and the demo's other processes up until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from worker.dashboard.auth import hash_password

DEMO_USER = "demo"


class Printer(Protocol):
    def print(self, *objects: object) -> None: ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(env: Mapping[str, str], logs: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start the dashboard for the demo; return the process, its address and the password."""
    password = secrets.token_urlsafe(12)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli.main", "dashboard", "--port", str(port)],
        env={
            **env,
            "DASHBOARD_HOST": "127.0.0.1",
            "DASHBOARD_USERS": f"{DEMO_USER}:admin:{hash_password(password)}",
        },
        stdout=(logs / "dashboard.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", process)
    return process, url, password


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the demo's dashboard did not answer at {url}")


def serve_until_interrupted(
    console: Printer, env: Mapping[str, str], logs: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Start the dashboard, say where and how to log in, and wait for Ctrl-C."""
    process, url, password = start(env, logs)
    procs.append(process)  # stopped with the demo's other processes
    console.print(
        f"\n[bold]dashboard[/bold] {url}  user [bold]{DEMO_USER}[/bold]  password "
        f"[bold]{password}[/bold] (this run only)\nPress Ctrl-C to stop."
    )
    with contextlib.suppress(KeyboardInterrupt):
        while process.poll() is None:
            time.sleep(0.5)
