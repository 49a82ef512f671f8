"""`worker run` under a fake systemd: READY=1, WATCHDOG=1, STOPPING=1 and the SIGTERM drain.

The test binds the datagram socket systemd would (``NOTIFY_SOCKET``) and starts real
``worker run`` processes against PostgreSQL, Redis and the simulator. The first one also runs
under the seccomp filter systemd installs for ``MemoryDenyWriteExecute=yes`` (the unit sets
it), so a library that needs writable+executable memory fails here rather than in production.
"""

from __future__ import annotations

import functools
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.pipeline.conftest import Pipeline, wait_for

# Installs the seccomp filter systemd 252 uses for MemoryDenyWriteExecute= (EPERM for mmap with
# PROT_WRITE|PROT_EXEC and for mprotect/pkey_mprotect with PROT_EXEC; its shmat(SHM_EXEC) rule is
# left out), then execs argv[1:]. The filter survives exec.
MDWE = r"""
import ctypes, os, platform, struct, sys
arch, mmap_nr, mprotect_nr, pkey_mprotect_nr = {
    "x86_64": (0xC000003E, 9, 10, 329), "aarch64": (0xC00000B7, 222, 226, 288)}[platform.machine()]
LD, JEQ, AND, RET, ALLOW, EPERM = 0x20, 0x15, 0x54, 0x06, 0x7FFF0000, 0x00050001
prog = [
    (LD, 0, 0, 4), (JEQ, 0, 10, arch),                   # 0-1 other ABI: allow
    (LD, 0, 0, 0), (JEQ, 0, 3, mmap_nr),                 # 2-3 mmap?
    (LD, 0, 0, 32), (AND, 0, 0, 6), (JEQ, 6, 5, 6),      # 4-6 prot has WRITE|EXEC: deny
    (JEQ, 1, 0, mprotect_nr), (JEQ, 0, 3, pkey_mprotect_nr),  # 7-8
    (LD, 0, 0, 32), (AND, 0, 0, 4), (JEQ, 1, 0, 4),      # 9-11 prot has EXEC: deny
    (RET, 0, 0, ALLOW), (RET, 0, 0, EPERM),              # 12-13
]
code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Prog(len(prog), ctypes.addressof(code))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):  # NO_NEW_PRIVS, SECCOMP
    raise OSError(ctypes.get_errno(), "prctl")
os.execv(sys.argv[1], sys.argv[1:])
"""


@functools.cache
def mdwe_available() -> bool:
    """The filter is written for Linux on x86_64/aarch64, and the sandbox may forbid seccomp."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        return False
    argv = [sys.executable, "-c", MDWE, sys.executable, "-c", "pass"]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0


SLOW_PROMPT = {"openai": {"rate_timeout": 1.0, "timeout_seconds": 3.0}}  # answers after 3 s
FAST_PROMPT = {"openai": {"rate_timeout": 0.0}}


class NotifySocket:
    """The receiving end of sd_notify, as systemd binds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[tuple[float, str]] = []

    def close(self) -> None:
        self.sock.close()

    def expect(self, state: str, timeout: float) -> float:
        """Wait for a datagram with the line ``state``; return when it arrived."""
        deadline = time.monotonic() + timeout
        seen = {s for _, s in self.received}
        while state not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [s for _, s in self.received]
                raise AssertionError(f"no {state} within {timeout} s; received {got}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            now = time.monotonic()
            for line in data.decode().splitlines():
                self.received.append((now, line))
                seen.add(line)
        return next(t for t, s in self.received if s == state)

    def states(self) -> list[str]:
        """Every state received so far, including datagrams not read yet."""
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(4096)
                self.received += [(time.monotonic(), line) for line in data.decode().splitlines()]
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return [s for _, s in self.received]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    path = tmp_path / "notify.sock"
    if len(str(path)) > 100:  # AF_UNIX paths are limited to 108 bytes
        path = Path("/tmp") / f"wt-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    sock = NotifySocket(path)
    yield sock
    sock.close()
    path.unlink(missing_ok=True)


def start_worker(
    pipeline: Pipeline, notify: NotifySocket, *, threads: int = 1, mdwe: bool = False, **env: str
) -> subprocess.Popen[bytes]:
    """`worker run` as systemd starts it: NOTIFY_SOCKET, WATCHDOG_USEC (1 s: pings every 0.5 s)."""
    argv = [sys.executable, "-m", "worker.cli.main", "run", "--threads", str(threads),
            "--instance", str(len(pipeline.procs) + 1)]  # fmt: skip
    if mdwe:
        argv = [sys.executable, "-c", MDWE, *argv]
    storage = Path(pipeline.settings.storage_dir)
    storage.mkdir(parents=True, exist_ok=True)
    log = open(storage / f"sd-worker-{len(pipeline.procs)}.log", "wb")  # noqa: SIM115
    full_env = {**pipeline.env, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen(argv, env={**full_env, **env}, stdout=log, stderr=subprocess.STDOUT)
    pipeline.procs.append(proc)  # the fixture stops it if the test does not
    return proc


def worker_log(pipeline: Pipeline) -> str:
    storage = Path(pipeline.settings.storage_dir)
    logs = sorted(storage.glob("*worker-*.log"))
    return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)


def running_jobs(pipeline: Pipeline) -> list[dict[str, Any]]:
    return pipeline.db.fetchall("SELECT id, step FROM jobs WHERE status = 'running' ORDER BY id")


def ack_sets(pipeline: Pipeline) -> dict[str, int]:
    """Messages fetched from Redis and not acked or requeued, per worker and queue."""
    client = redis.Redis.from_url(pipeline.settings.redis_url)
    try:
        pattern = f"{pipeline.settings.redis_namespace}:q:__acks__.*"
        return {k.decode(): int(client.scard(k)) for k in client.scan_iter(pattern)}
    finally:
        client.close()


def test_mdwe_filter_refuses_writable_executable_memory() -> None:
    if not mdwe_available():
        pytest.skip("cannot install a seccomp filter here (not Linux x86_64/aarch64, or forbidden)")
    probe = (
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"
    )
    res = subprocess.run([sys.executable, "-c", MDWE, sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode != 0 and "Operation not permitted" in res.stderr, res.stderr


def test_ready_watchdog_then_sigterm_finishes_the_step_in_flight(
    pipeline: Pipeline, notify: NotifySocket
) -> None:
    pipeline.sim.configure(SLOW_PROMPT)
    drain = pipeline.settings.drain_seconds
    proc = start_worker(pipeline, notify, threads=1, mdwe=mdwe_available(), OPENAI_TIMEOUT="5")
    try:
        ready = notify.expect("READY=1", timeout=30)
        assert notify.expect("WATCHDOG=1", timeout=5) > ready
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker_log(pipeline)}") from None

    # Three jobs, one thread: one prompt step in flight (3 s), the others prefetched or queued.
    jobs = pipeline.submit(41, count=3, credits=3)
    (in_flight,) = wait_for(lambda: running_jobs(pipeline), 15, "a running step")
    assert in_flight["step"] == "prompt"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    notify.expect("STOPPING=1", timeout=2)
    assert proc.wait(timeout=drain + 5) == 0, worker_log(pipeline)
    took = time.monotonic() - started
    assert took < drain, f"drain took {took:.1f} s"
    assert any(s.startswith("EXTEND_TIMEOUT_USEC=") for s in notify.states())

    # The step finished and its outcome was written: the job moved on to its next step and
    # nothing is left claimed by the stopped process.
    assert running_jobs(pipeline) == []
    job = pipeline.client.job(in_flight["id"])
    assert job["step"] != "prompt", job["events"]
    # Prefetched messages went back to their queues: no ack set holds any.
    assert not any(ack_sets(pipeline).values()), ack_sets(pipeline)

    # Another process picks everything up; nothing was lost or done twice.
    pipeline.sim.configure(FAST_PROMPT)
    pipeline.start_process(threads=4, instance=9)
    try:
        done = pipeline.wait(jobs, timeout=40)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker_log(pipeline)}") from None
    assert [j["status"] for j in done] == ["succeeded"] * 3
    assert pipeline.paid_creates() == 3
    assert pipeline.ledger_ok()


def test_second_sigterm_exits_at_once_and_the_job_is_rescued(
    pipeline: Pipeline, notify: NotifySocket
) -> None:
    pipeline.sim.configure(SLOW_PROMPT)
    # A short lease, so the job of the killed process is rescued quickly.
    proc = start_worker(pipeline, notify, threads=1, OPENAI_TIMEOUT="5", LEASE_SECONDS="2")
    notify.expect("READY=1", timeout=30)
    (job_id,) = pipeline.submit(42, count=1, credits=1)
    wait_for(lambda: running_jobs(pipeline), 15, "a running step")

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    notify.expect("STOPPING=1", timeout=2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) != 0
    assert time.monotonic() - started < 2.0
    assert [r["id"] for r in running_jobs(pipeline)] == [job_id]  # its lease still holds

    pipeline.sim.configure(FAST_PROMPT)
    pipeline.start_process(threads=2, instance=9)
    (job,) = pipeline.wait([job_id], timeout=40)
    assert job["status"] == "succeeded", job["events"]
    assert any("rescue" in e["event"] for e in job["events"]), job["events"]
    assert pipeline.ledger_ok()


def test_health_check_names_each_problem(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker(threads=2)
    assert worker.check_health().ok, worker.check_health()

    good_redis = worker.redis
    # Nothing listens on port 1; no retries, to keep the test fast.
    worker.redis = redis.Redis(port=1, retry=Retry(NoBackoff(), 0))
    try:
        with worker.leases._lock:  # holds the lease keeper's next beat back
            worker.leases.last_beat -= 3600  # as if it had been stuck for an hour
            problems = worker.check_health().problems
    finally:
        worker.redis.close()
        worker.redis = good_redis
    assert len(problems) == 2, problems
    assert problems[0].startswith("Redis does not answer")
    assert problems[1].startswith("lease keeper silent")
    # The keeper beats every LEASE_SECONDS / 3, even with nothing in flight.
    wait_for(worker.healthy, pipeline.settings.lease_seconds, "healthy again")


def test_worker_webhooks_under_systemd_ready_watchdog_and_a_clean_stop(
    pipeline: Pipeline, notify: NotifySocket
) -> None:
    """`worker webhooks` as worker-webhooks.service starts it: READY=1 once it listens,
    WATCHDOG=1 while PostgreSQL and Redis answer, STOPPING=1 and exit 0 on SIGTERM, under the
    MemoryDenyWriteExecute= filter the unit sets (aiohttp's C parts included)."""
    port = free_port()
    argv = [sys.executable, "-m", "worker.cli.main", "webhooks", "--port", str(port)]
    if mdwe_available():
        argv = [sys.executable, "-c", MDWE, *argv]
    storage = Path(pipeline.settings.storage_dir)
    storage.mkdir(parents=True, exist_ok=True)
    log = open(storage / "sd-worker-webhooks.log", "wb")  # noqa: SIM115
    env = {**pipeline.env, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    pipeline.procs.append(proc)
    try:
        ready = notify.expect("READY=1", timeout=30)
        assert notify.expect("WATCHDOG=1", timeout=5) > ready
        import httpx

        probe = httpx.get(f"http://127.0.0.1:{port}/callbacks/video/kie", timeout=5)
        assert probe.json()["webhook"] == "video/kie"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker_log(pipeline)}") from None
    proc.send_signal(signal.SIGTERM)
    notify.expect("STOPPING=1", timeout=5)
    assert proc.wait(timeout=20) == 0, worker_log(pipeline)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
