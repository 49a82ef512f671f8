"""A private PgBouncer (Debian's ``pgbouncer`` package) in transaction pooling mode, in front of
a PostgreSQL server, on a free port: what the tests, the chaos run and the scale benchmark use
to put the workers behind a pooler as production would.

Trust authentication with a generated userlist; every database of the server is reachable
under its own name. Runs as the ``postgres`` user when started as root (PgBouncer refuses
root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BINARY_NAMES = ("pgbouncer",)
SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def pgbouncer_binary() -> str | None:
    """Where Debian's package installs ``pgbouncer``, or None when it is missing."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    for folder in SEARCH_PATH:
        candidate = Path(folder) / "pgbouncer"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """``with PgBouncer(server_url) as bouncer: bouncer.url_for(database_url)``."""

    def __init__(
        self,
        server_url: str,
        *,
        pool_size: int = 20,
        root: Path | None = None,
        pool_mode: str = "transaction",
    ) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (Debian package pgbouncer)")
        self.binary = binary
        server = urlsplit(server_url)
        self.server_host = server.hostname or "127.0.0.1"
        self.server_port = server.port or 5432
        self.user = server.username or "postgres"
        self.pool_size = pool_size
        self.pool_mode = pool_mode
        self.port = _free_port()
        self.root = root or Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------

    def url_for(self, database_url: str) -> str:
        """``database_url`` (a database of the server behind) through this PgBouncer."""
        parts = urlsplit(database_url)
        netloc = f"{parts.username or self.user}@127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def admin_url(self) -> str:
        """The admin console (``SHOW POOLS``, ``SHOW SERVERS``)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/pgbouncer"

    # -- life --------------------------------------------------------------------------------

    def _config(self) -> str:
        return "\n".join(
            [
                "[databases]",
                f"* = host={self.server_host} port={self.server_port} user={self.user}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {self.root / 'userlist.txt'}",
                f"admin_users = {self.user}",
                f"stats_users = {self.user}",
                f"pool_mode = {self.pool_mode}",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 2000",
                "max_db_connections = 0",
                # `worker doctor` sets statement_timeout with a startup option.
                "ignore_startup_parameters = extra_float_digits,options",
                # Recover within a second after a PostgreSQL restart (default: 15 s), and do not
                # keep a client waiting two minutes for a server that is down (default: 120 s).
                "server_login_retry = 1",
                "query_wait_timeout = 30",
                f"logfile = {self.root / 'pgbouncer.log'}",
                f"pidfile = {self.root / 'pgbouncer.pid'}",
                "",
            ]
        )

    def start(self) -> PgBouncer:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "userlist.txt").write_text(f'"{self.user}" ""\n')
        config = self.root / "pgbouncer.ini"
        config.write_text(self._config())
        command = [self.binary, str(config)]
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            for f in self.root.iterdir():
                shutil.chown(f, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=2) as c:
                    c.execute("SHOW VERSION")
                return self
            except psycopg.Error as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.log_tail()
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {exc}\n{log}") from exc
                time.sleep(0.1)

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "pgbouncer.log").read_text(errors="replace")[-chars:]
        return ""

    def servers(self) -> int:
        """Server connections PgBouncer holds to PostgreSQL now (``SHOW SERVERS``)."""
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            return len(c.execute("SHOW SERVERS").fetchall())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
