"""Jobs through all four steps, two `worker run` processes, the simulator in its own process.

    python -m benchmarks.pipeline [--jobs 2000] [--render 0] [--workers 2] [--threads 8]

With ``--render 0`` (zero-latency simulator) it measures throughput from a pre-loaded backlog:
jobs / (last capture − first claim), the transactions committed per job, and the CPU each job
costs the workers and the whole machine in the steady state. With a render time
it reports the wall time from the first submit to the last capture, e.g.
``--jobs 50 --render 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from benchmarks.common import fast_simulator, stack, submit_backlog, wait_until


def run(
    jobs: int = 2000,
    render: float = 0.0,
    workers: int = 2,
    threads: int = 8,
    timeout: float = 600.0,
) -> dict[str, Any]:
    sim = fast_simulator(render)
    with stack("wbench_pipe", sim) as s:
        t0 = time.monotonic()
        submit_backlog(s.client, jobs)
        submitted = time.monotonic() - t0
        commits_before = _commits(s.db)
        s.start_workers(workers, threads)
        pids = [w.pid for w in s.workers]
        # CPU from the first claim (the workers have started up) to the last capture.
        marks: list[tuple[float, float]] = []

        def finished() -> bool:
            if not marks and s.count("started_at IS NOT NULL"):
                marks.append((_process_cpu(pids), _machine_cpu()))
            if s.count("status IN ('succeeded', 'failed')") < jobs:
                return False
            marks.append((_process_cpu(pids), _machine_cpu()))
            return True

        done = wait_until(finished, timeout, interval=0.2)
        wall = time.monotonic() - t0
        time.sleep(STATS_FLUSH_SECONDS)
        commits = _commits(s.db) - commits_before
        row = s.db.fetchone(
            "SELECT min(started_at) AS first, max(finished_at) AS last,"
            " count(*) FILTER (WHERE status = 'succeeded') AS ok,"
            " min(created_at) AS created FROM jobs"
        )
        assert row is not None
        span = (row["last"] - row["first"]).total_seconds() if row["last"] else float("nan")
        return {
            "jobs": jobs,
            "render_seconds": render,
            "workers": workers,
            "threads": threads,
            "finished": done,
            "succeeded": int(row["ok"]),
            "submit_seconds": round(submitted, 2),
            "processing_seconds": round(span, 2),
            "jobs_per_s": round(jobs / span, 1) if span == span and span > 0 else 0.0,
            "submit_to_last_capture_seconds": round(
                (row["last"] - row["created"]).total_seconds(), 2
            )
            if row["last"]
            else None,
            "wall_seconds": round(wall, 2),
            # every transaction the workers committed (steps, heartbeats, maintenance) per job
            "commits_per_job": round(commits / jobs, 2),
            **_cpu_per_job(marks, jobs),
        }


def _cpu_per_job(marks: list[tuple[float, float]], jobs: int) -> dict[str, float]:
    """Milliseconds of CPU per job from the first claim to the last capture: the workers', and
    the machine's (every process: workers, PostgreSQL, Redis, the simulator). Two cores at N
    jobs/s allow at most 2000 / N ms of machine CPU per job."""
    if len(marks) < 2:
        return {}
    (w1, m1), (w2, m2) = marks[0], marks[-1]
    return {
        "worker_cpu_ms_per_job": round((w2 - w1) / jobs * 1000, 2),
        "machine_cpu_ms_per_job": round((m2 - m1) / jobs * 1000, 2),
    }


def _process_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """CPU seconds every core has spent busy so far (all but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


#: PostgreSQL publishes a backend's counters at most about once a second.
STATS_FLUSH_SECONDS = 1.5


def _commits(db: Any) -> int:
    row = db.fetchone("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    assert row is not None
    return int(row["xact_commit"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--render", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    print(json.dumps(run(args.jobs, args.render, args.workers, args.threads)))


if __name__ == "__main__":
    main()
