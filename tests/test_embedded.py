"""The README's two commands on a bare machine: `worker demo` and the tests fall back to an
embedded PostgreSQL and Redis (worker/embedded.py) when nothing answers at 127.0.0.1.

A bare machine is made with a network namespace (``unshare -n``, loopback up for the simulator):
127.0.0.1:5432 and :6379 are closed there whatever runs on the host. Those tests skip, saying
why, where namespaces are not allowed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from worker import embedded
from worker.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(sys.executable).with_name("worker")


def _namespace_refusal() -> str | None:
    """Why a network namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    done = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"network namespaces are not allowed here: {done.stderr.strip()[:200]}"
    return None


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a new user: no URLs, no test variables, a wide console."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_NAMESPACE", "STORAGE_DIR")
        and not k.startswith("TEST_")
    }
    env["COLUMNS"] = "400"  # rich wraps at 80 columns when not on a terminal
    env["HOME"] = str(tmp_path)
    return env


def _bare(command: str) -> list[str]:
    """``command`` (a shell line) run in a new network namespace with only loopback up."""
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"]


@pytest.fixture(scope="module")
def namespaces() -> None:
    refusal = _namespace_refusal()
    if refusal:
        pytest.skip(refusal)


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_embedded_servers_are_real_and_leave_nothing_behind() -> None:
    with embedded.running() as servers:
        directory = servers.directory
        assert servers.running()
        with psycopg.connect(servers.database_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE wt_embedded")
            row = conn.execute("SHOW server_version_num").fetchone()
            assert row is not None and int(row[0]) >= 160000
        with psycopg.connect(servers.url_for("wt_embedded")) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
            assert row == ("wt_embedded",)
        client = redis.Redis.from_url(servers.redis_url)
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
        pg_port = int(servers.database_url.split(":")[-1].split("/")[0])
        redis_port = int(servers.redis_url.split(":")[-1].split("/")[0])
    assert not servers.running()
    assert not directory.exists()
    assert _closed(pg_port) and _closed(redis_port)


def test_demo_falls_back_only_when_no_url_was_set() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    unset = load_settings(_env_file=None)
    explicit = load_settings(
        _env_file=None, database_url=f"postgresql://postgres@127.0.0.1:{port}/worker"
    )
    # a URL the user set is used as it is, answering or not: its error is theirs to see
    assert embedded.demo_reason(explicit, force=False) == ""
    assert embedded.demo_reason(explicit, force=True) == "--embedded"
    assert embedded.demo_reason(unset, force=True) == "--embedded"
    assert not embedded.answers(f"redis://127.0.0.1:{port}/0")


def test_a_missing_package_says_how_to_get_it() -> None:
    with pytest.raises(embedded.EmbeddedUnavailable, match="demo extra"):
        embedded._package_file("no_such_package_for_embedded_servers", "bin")


def _read_until(stream: object, needle: str, seconds: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not printed within {seconds} s:\n" + "".join(lines[-60:]))


@pytest.mark.slow
def test_worker_demo_on_a_bare_machine(namespaces: None, tmp_path: Path) -> None:
    """`worker demo` with nothing at 127.0.0.1: embedded servers, every job as the scenario
    expects, a clean ledger; with --keep, `worker jobs show` reaches them until Ctrl-C, which
    removes them."""
    env = _bare_env(tmp_path)
    summary_file = tmp_path / "summary.json"
    command = f"{shlex.quote(str(WORKER))} demo --json --keep --render-seconds 1"
    with summary_file.open("w") as out:
        demo = subprocess.Popen(
            _bare(command), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.PIPE, text=True
        )
    try:
        assert demo.stderr is not None
        lines = _read_until(demo.stderr, "REDIS_NAMESPACE=", 240)
        said = next(line for line in lines if "using an embedded PostgreSQL and Redis" in line)
        assert "PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379 did not answer" in said
        directory = Path(said.split(" in ", 1)[1].split(" (", 1)[0])
        assert (directory / "postgres" / "PG_VERSION").exists()
        export = next(line for line in lines if line.strip().startswith("export "))
        urls = dict(item.split("=", 1) for item in shlex.split(export)[1:])

        summary = json.loads(summary_file.read_text())
        assert summary["unfinished"] == 0 and summary["ledger_ok"], summary
        assert summary["succeeded"] == 5
        assert summary["failed"] == {"USER_ERROR": 1}
        assert len(summary["refused_at_submit"]) == 1
        assert summary["keys"]["demo-broke"][0] == "quarantined"
        assert (summary["credits_captured"], summary["credits_refunded"]) == (5, 1)
        assert summary["called_back"] == 5

        # another shell, same (bare) machine, while the demo holds the servers
        shown = subprocess.run(
            ["nsenter", f"--net=/proc/{demo.pid}/ns/net", str(WORKER), "jobs", "show", "1"],
            cwd=tmp_path,
            env={**env, **urls},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert "succeeded" in shown.stdout
        ledger = subprocess.run(
            ["nsenter", f"--net=/proc/{demo.pid}/ns/net", str(WORKER), "ledger", "check"],
            cwd=tmp_path,
            env={**env, **urls},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ledger.returncode == 0, ledger.stdout + ledger.stderr

        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0, demo.stderr.read()[-3000:]
        assert not directory.exists()
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(30)


@pytest.mark.slow
def test_an_explicit_url_gets_the_clear_error_not_a_fallback(
    namespaces: None, tmp_path: Path
) -> None:
    env = {**_bare_env(tmp_path), "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/worker"}
    done = subprocess.run(
        _bare(f"{shlex.quote(str(WORKER))} demo --render-seconds 1"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cannot reach postgresql" in done.stderr.lower()
    assert "embedded" not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_small_suite_runs_on_embedded_servers(namespaces: None, tmp_path: Path) -> None:
    """tests/conftest.py's fallback: a submit, one pipeline run and the ledger's checks, on a
    machine where nothing answers at 127.0.0.1."""
    chosen = [
        "tests/test_submit.py::test_submit_commits_jobs_holds_and_events",
        "tests/pipeline/test_video_pipeline.py::test_happy_path_count_1_and_3",
        "tests/test_ledger.py::test_grant_hold_capture_refund_scenario",
    ]
    pytest_bin = shlex.quote(str(Path(sys.executable).with_name("pytest")))
    command = f"{pytest_bin} -p no:cacheprovider {' '.join(chosen)}"
    env = _bare_env(tmp_path)
    done = subprocess.run(
        _bare(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "nothing answered at 127.0.0.1: embedded PostgreSQL" in out, out[-2000:]
    assert "3 passed" in out, out[-2000:]
