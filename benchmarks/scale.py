"""Twenty `worker run` processes at default settings on a stock PostgreSQL (issue #21).

    python -m benchmarks.scale [--json] [--jobs 2000] [--workers 20] [--baseline-workers 2]
                               [--server private|local] [--max-connections 100]

By default it starts a private PostgreSQL with ``max_connections = 100`` (a stock server's
value; the machine's own server may be larger, or busy with other work), then in the same run:

1. the two-process pipeline figure: ``--baseline-workers`` processes drain a ``--jobs`` backlog
   (zero-latency simulator), as ``benchmarks.pipeline`` does;
2. ``--workers`` processes drain a fresh backlog of the same size.

In each phase the workers start first (all at once, as ``systemctl start worker@{1..20}``
does) and the backlog is submitted once every one of them is ready, so jobs per second measure
the work, not 20 interpreters starting on two cores; the start-up is still watched.

Through both it samples ``pg_stat_activity`` every 50 ms (peak of server connections: all client
backends, and the workers' own), and a separate client connects and runs ``SELECT 1`` every
100 ms (the longest wait, and any failure). It reports jobs per second of each phase, the
resident memory of the workers, and whether any worker exited. The targets: at most 80 server
connections, every probe within 100 ms, no exit, and 20 processes at least as fast as two.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import benchmarks.common as common
from benchmarks.common import (
    Progress,
    fast_simulator,
    free_port,
    print_json,
    quiet,
    rss_mb,
    stack,
    submit_backlog,
    wait_until,
)
from worker.db import APPLICATION_NAME

#: The stock ``max_connections`` the targets are stated for.
STOCK_MAX_CONNECTIONS = 100
TARGET_PEAK_CONNECTIONS = 80
TARGET_PROBE_MS = 100.0


def _pg_bin() -> Path:
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return versions[-1] / "bin"


@contextlib.contextmanager
def private_postgres(max_connections: int) -> Iterator[str]:
    """A throwaway PostgreSQL cluster with stock settings but ``max_connections``; yields the
    admin URL. initdb and the server run as the ``postgres`` user when we are root."""
    root = Path(tempfile.mkdtemp(prefix="bench-scale-pg-"))
    root.chmod(0o755)
    data, port = root / "data", free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_pg, str(_pg_bin() / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}"
    ctl = [*as_pg, str(_pg_bin() / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log")]
    subprocess.run([*ctl, "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Watch:
    """Samples server connections, probes a fresh connection, watches the workers' memory."""

    admin_url: str
    database: str
    stop: threading.Event = field(default_factory=threading.Event)
    peak_all: int = 0
    peak_workers: int = 0
    probes_ms: list[float] = field(default_factory=list)
    #: (monotonic time, ms) of each probe, to tell the start-up from the work
    probe_times: list[tuple[float, float]] = field(default_factory=list)
    probe_failures: list[str] = field(default_factory=list)
    worker_pids: set[int] = field(default_factory=set)
    peak_rss_mb: float = 0.0
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Watch:
        for target in (self._sample, self._probe):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _sample(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE backend_type = 'client backend'),"
                    " count(*) FILTER (WHERE application_name = %s AND datname = %s)"
                    " FROM pg_stat_activity",
                    (APPLICATION_NAME, self.database),
                    prepare=False,
                ).fetchone()
                assert row is not None
                self.peak_all = max(self.peak_all, int(row[0]))
                self.peak_workers = max(self.peak_workers, int(row[1]))
                rss = sum(rss_mb(pid) for pid in list(self.worker_pids))
                self.peak_rss_mb = max(self.peak_rss_mb, rss)
                self.stop.wait(0.05)

    def _probe(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute("SELECT 1").fetchone()
                took = (time.perf_counter() - t0) * 1000
                self.probes_ms.append(took)
                self.probe_times.append((time.monotonic(), took))
            except psycopg.Error as exc:
                self.probe_failures.append(str(exc).strip().splitlines()[0])
            self.stop.wait(max(0.0, 0.1 - (time.perf_counter() - t0)))

    def summary(self, ready_at: float) -> dict[str, Any]:
        ms = sorted(self.probes_ms)
        start_up = [m for t, m in self.probe_times if t < ready_at]
        working = sorted(m for t, m in self.probe_times if t >= ready_at)
        return {
            "probe_max_ms_start_up": round(max(start_up), 1) if start_up else None,
            "probe_max_ms_working": round(working[-1], 1) if working else None,
            "probe_p99_ms_working": (
                round(working[int(len(working) * 0.99) - 1], 1) if len(working) >= 100 else None
            ),
            "peak_server_connections": self.peak_all,
            "peak_worker_connections": self.peak_workers,
            "probes": len(ms) + len(self.probe_failures),
            "probe_failures": len(self.probe_failures),
            "probe_failure_examples": sorted(set(self.probe_failures))[:3],
            "probe_max_ms": round(ms[-1], 1) if ms else None,
            "probe_p99_ms": round(ms[int(len(ms) * 0.99) - 1], 1) if len(ms) >= 100 else None,
            "probe_median_ms": round(statistics.median(ms), 1) if ms else None,
        }


def _phase(
    workers: int,
    jobs: int,
    timeout: float,
    progress: Progress,
    name: str,
    nice: int = 0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``workers`` processes at default settings start (watched from the first), say they are
    ready, and drain a backlog of ``jobs`` submitted at once."""
    with stack(f"wbench_scale{workers}", fast_simulator(0.0)) as s:
        database = s.settings.database_url.rsplit("/", 1)[1]
        watch = Watch(common.ADMIN_URL, database).start()
        exits: list[str] = []
        try:
            started = time.monotonic()
            # default WORKER_THREADS (8) and DB_POOL_MAX (3), unless --env says otherwise
            threads = int((env or {}).get("WORKER_THREADS", s.settings.worker_threads))
            s.start_workers(workers, threads, "worker.cli.main", **(env or {}))
            if nice:  # before they start their threads, which inherit it (as systemd's Nice=)
                for w in s.workers:
                    os.setpriority(os.PRIO_PROCESS, w.pid, nice)
            watch.worker_pids = {w.pid for w in s.workers}
            logs = [s.logs / f"worker-{i}.log" for i in range(workers)]
            progress(f"{name}: starting {workers} workers")
            ready = wait_until(
                lambda: all(" ready: " in f.read_text(errors="replace") for f in logs), 300, 0.2
            )
            ready_at = time.monotonic()
            start_up = ready_at - started
            progress(f"{name}: submitting {jobs:,} jobs")
            submit_backlog(s.client, jobs)

            def finished() -> bool:
                for i, w in enumerate(s.workers):
                    if w.poll() is not None and f"worker {i + 1}" not in str(exits):
                        exits.append(f"worker {i + 1} exited with {w.returncode}")
                ended = s.count("status IN ('succeeded', 'failed')")
                progress(f"{name}: {ended:,} of {jobs:,} jobs finished")
                return ended >= jobs

            done = wait_until(finished, timeout, interval=0.2)
            rss = sum(rss_mb(w.pid) for w in s.workers)
        finally:
            watch.finish()
        row = s.db.fetchone(
            "SELECT min(started_at) AS first, max(finished_at) AS last,"
            " count(*) FILTER (WHERE status = 'succeeded') AS ok,"
            " percentile_cont(0.1) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at)) AS p10,"
            " percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at)) AS p90"
            " FROM jobs"
        )
        assert row is not None
        span = (row["last"] - row["first"]).total_seconds() if row["last"] else float("nan")
        middle = float(row["p90"] - row["p10"]) if row["p90"] is not None else 0.0
        return {
            "workers": workers,
            "threads": threads,
            "db_pool_max": int((env or {}).get("DB_POOL_MAX", s.settings.db_pool_max)),
            "jobs": jobs,
            "finished": done,
            "succeeded": int(row["ok"]),
            "jobs_per_s": round(jobs / span, 1) if span == span and span > 0 else 0.0,
            # the middle 80 % of the jobs, without the first claims and the last stragglers
            "steady_jobs_per_s": round(0.8 * jobs / middle, 1) if middle > 0 else 0.0,
            "all_ready": ready,
            "start_up_seconds": round(start_up, 1),
            "exits": exits,
            "workers_rss_mb": round(rss, 1),
            "workers_peak_rss_mb": round(watch.peak_rss_mb, 1),
            **watch.summary(ready_at),
        }


def run(
    jobs: int = 2000,
    workers: int = 20,
    baseline_workers: int = 2,
    server: str = "private",
    max_connections: int = STOCK_MAX_CONNECTIONS,
    timeout: float = 900.0,
    progress: Progress = quiet,
    nice: int = 0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    with psycopg.connect(common.ADMIN_URL, autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    local_max = int(row[0]) if row else 0
    admin_before = common.ADMIN_URL
    with contextlib.ExitStack() as stack_:
        if server == "private":
            progress(f"starting a private PostgreSQL with max_connections = {max_connections}")
            common.ADMIN_URL = stack_.enter_context(private_postgres(max_connections))
        try:
            with psycopg.connect(common.ADMIN_URL, autocommit=True) as conn:
                row = conn.execute("SHOW max_connections").fetchone()
            used_max = int(row[0]) if row else 0
            two = _phase(
                baseline_workers, jobs, timeout, progress, f"{baseline_workers} workers", nice, env
            )
            many = _phase(workers, jobs, timeout, progress, f"{workers} workers", nice, env)
        finally:
            common.ADMIN_URL = admin_before
    targets = {
        "peak_connections_at_most_80": many["peak_server_connections"] <= TARGET_PEAK_CONNECTIONS,
        "probe_within_100_ms": (
            many["probe_failures"] == 0
            and many["probe_max_ms"] is not None
            and many["probe_max_ms"] <= TARGET_PROBE_MS
        ),
        "no_instance_exits": not many["exits"],
        "not_slower_than_two_processes": many["jobs_per_s"] >= two["jobs_per_s"],
        "all_finished": bool(many["finished"] and two["finished"]),
    }
    return {
        "server": server,
        "local_max_connections": local_max,
        "max_connections": used_max,
        "workers_nice": nice,
        "workers_env": env or {},
        "jobs_per_s": many["jobs_per_s"],
        "two_process_jobs_per_s": two["jobs_per_s"],
        "peak_server_connections": many["peak_server_connections"],
        "probe_max_ms": many["probe_max_ms"],
        "workers_rss_mb": many["workers_rss_mb"],
        "targets": targets,
        "targets_met": all(targets.values()),
        "phases": {"two": two, "many": many},
    }


def _print_text(result: dict[str, Any]) -> None:
    many, two = result["phases"]["many"], result["phases"]["two"]
    print(
        f"server: {result['server']} (max_connections {result['max_connections']}; "
        f"this machine's own server: {result['local_max_connections']})"
    )
    for label, p in ((f"{two['workers']} processes", two), (f"{many['workers']} processes", many)):
        print(
            f"{label:>13}: {p['jobs_per_s']} jobs/s (steady {p['steady_jobs_per_s']}), "
            f"{p['succeeded']}/{p['jobs']} succeeded, start-up {p['start_up_seconds']} s, "
            f"peak {p['peak_server_connections']} server connections "
            f"({p['peak_worker_connections']} the workers'), probe max {p['probe_max_ms']} ms "
            f"(p99 {p['probe_p99_ms']}, {p['probe_failures']} failed of {p['probes']}), "
            f"RSS {p['workers_rss_mb']} MB, exits: {p['exits'] or 'none'}"
        )
    for name, ok in result["targets"].items():
        print(f"  {'met' if ok else 'NOT MET'}: {name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--workers", type=int, default=20)
    p.add_argument("--baseline-workers", type=int, default=2)
    p.add_argument("--server", choices=("private", "local"), default="private")
    p.add_argument("--max-connections", type=int, default=STOCK_MAX_CONNECTIONS)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the workers at this niceness (as Nice= in a worker@ drop-in): PostgreSQL and "
        "other clients then get the CPU first",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the workers instead of its default (e.g. IDLE_POLL_MS=500)",
    )
    args = p.parse_args()

    def go(progress: Progress) -> dict[str, Any]:
        return run(
            args.jobs,
            args.workers,
            args.baseline_workers,
            args.server,
            args.max_connections,
            args.timeout,
            progress,
            args.nice,
            {k: v for k, _, v in (e.partition("=") for e in args.env)},
        )

    if args.json:
        print_json(go)
    else:
        _print_text(go(common.to_stderr))


if __name__ == "__main__":
    main()
