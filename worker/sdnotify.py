"""systemd's notify protocol in a few lines of standard library (no dependency).

With ``Type=notify`` systemd waits for ``READY=1``; with ``WatchdogSec`` it expects
``WATCHDOG=1`` at least every ``WATCHDOG_USEC`` and restarts the unit otherwise. Outside
systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. ``"READY=1"``) to systemd. False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between pings systemd expects (half its timeout), or None if not watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


#: How far each :func:`waiting` pushes systemd's start timeout back; it is sent at least once
#: a minute while the wait lasts.
WAIT_EXTEND_SECONDS = 120.0


def waiting(what: str, reason: str) -> bool:
    """During start-up, before ``READY=1``: say what the process waits for and why, and push
    systemd's start timeout (``TimeoutStartSec``) back, so a process waiting for PostgreSQL is
    neither killed nor restarted while it waits. Call it at least once a minute."""
    return notify(
        f"STATUS=waiting for {what}: {reason}",
        f"EXTEND_TIMEOUT_USEC={int(WAIT_EXTEND_SECONDS * 1_000_000)}",
    )
