"""Jobs through all four steps, two `worker run` processes, the simulator in its own process.

    python -m benchmarks.pipeline [--jobs 2000] [--render 0] [--workers 2] [--threads 8]
                                  [--first-poll S] [--callbacks [--safety-poll S]]

With ``--render 0`` (zero-latency simulator) it measures throughput from a pre-loaded backlog:
jobs / (last capture − first claim), the transactions committed per job, and the CPU each job
costs the workers and the whole machine in the steady state. With a render time
it reports the wall time from the first submit to the last capture, e.g.
``--jobs 50 --render 3``. With ``--callbacks`` the simulator calls back when a task ends
(`worker webhooks` runs beside the workers, and its CPU is reported as ``webhooks``): compare
``polls_per_job`` and the CPU per video with and without, e.g. ``--jobs 600 --render 60``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.common import (
    Progress,
    fast_simulator,
    print_json,
    process_cpu_seconds,
    processes_named,
    quiet,
    stack,
    submit_backlog,
    wait_until,
)


def run(
    jobs: int = 2000,
    render: float = 0.0,
    workers: int = 2,
    threads: int = 8,
    timeout: float = 600.0,
    progress: Progress = quiet,
    worker_module: str = "worker.cli.main",
    worker_env: dict[str, str] | None = None,
    first_poll: float = 0.0,
    callbacks: bool = False,
    safety_poll: float = 120.0,
) -> dict[str, Any]:
    sim = fast_simulator(render)
    with stack("wbench_pipe", sim, kie_first_poll_seconds=first_poll) as s:
        if callbacks:
            s.start_webhooks(safety_poll)
        t0 = time.monotonic()
        progress(f"submitting {jobs:,} jobs")
        submit_backlog(s.client, jobs)
        submitted = time.monotonic() - t0
        commits_before = _commits(s.db)
        s.start_workers(workers, threads, worker_module, **(worker_env or {}))
        parts = {"worker": {w.pid for w in s.workers}, "simulator": {s.sim_pid}}
        if s.webhooks is not None:
            parts["webhooks"] = {s.webhooks.pid}
        # CPU from the first claim (the workers have started up) to the last capture.
        marks: list[CpuMark] = []

        def finished() -> bool:
            if not marks and s.count("started_at IS NOT NULL"):
                marks.append(CpuMark.read(parts))
            ended = s.count("status IN ('succeeded', 'failed')")
            progress(f"{ended:,} of {jobs:,} jobs finished")
            if ended < jobs:
                return False
            marks.append(CpuMark.read(parts))
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
            "polls_per_job": round(_polls(s) / jobs, 2),
            "callbacks": callbacks,
            "callbacks_per_job": round(_callbacks(s) / jobs, 2),
            **_cpu_per_job(marks, jobs),
        }


#: Processes counted by their command name rather than by pid: every PostgreSQL process (the
#: workers' backends, the WAL writer, ...) and the Redis server.
SERVICES = {"postgres": "postgres", "redis-server": "redis"}


@dataclass
class CpuMark:
    """CPU seconds so far: of every process (by pid), and of the machine (all cores, busy)."""

    by_pid: dict[int, tuple[str, float]]
    machine: tuple[float, float, float]  # busy, stolen by the hypervisor, all (seconds)

    @classmethod
    def read(cls, parts: dict[str, set[int]]) -> CpuMark:
        """Read /proc: the processes in ``parts`` (by pid) and every :data:`SERVICES` process."""
        named = {pid: SERVICES[comm] for pid, comm in processes_named(SERVICES).items()}
        named.update({pid: part for part, pids in parts.items() for pid in pids})
        by_pid: dict[int, tuple[str, float]] = {}
        for pid, part in named.items():
            try:
                by_pid[pid] = (part, process_cpu_seconds(pid))
            except OSError:  # the process ended meanwhile
                continue
        return cls(by_pid, _machine_cpu())

    def since(self, start: CpuMark) -> dict[str, float]:
        """CPU seconds spent by each part between ``start`` and this mark. A process that started
        in between counts from zero; one that ended in between is missed (the workers' backends
        live as long as the workers)."""
        spent: dict[str, float] = {}
        for pid, (part, now) in self.by_pid.items():
            before = start.by_pid.get(pid, (part, 0.0))[1]
            spent[part] = spent.get(part, 0.0) + now - before
        spent["machine"] = self.machine[0] - start.machine[0]
        spent["stolen"] = self.machine[1] - start.machine[1]
        spent["all"] = self.machine[2] - start.machine[2]
        return spent


def _cpu_per_job(marks: list[CpuMark], jobs: int) -> dict[str, float]:
    """Milliseconds of CPU per job from the first claim to the last capture: the workers', each
    service's, and the machine's (every process, the kernel included). Two cores at N jobs/s
    allow at most 2000 / N ms of machine CPU per job."""
    if len(marks) < 2:
        return {}
    spent = marks[-1].since(marks[0])
    return {
        **{
            f"{part}_cpu_ms_per_job": round(spent.get(part, 0.0) / jobs * 1000, 2)
            for part in ("worker", "postgres", "redis", "simulator", "webhooks", "machine")
            if part != "webhooks" or part in spent
        },
        # CPU time the hypervisor gave to other guests: a busy host slows every figure above
        "steal_percent": round(100 * spent["stolen"] / spent["all"], 1) if spent["all"] else 0.0,
    }


def _machine_cpu() -> tuple[float, float, float]:
    """CPU seconds of every core so far: busy (user, nice, system, irq, softirq), stolen by the
    hypervisor, and all of them (busy, stolen, idle and iowait)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(v) for v in f.readline().split()[1:9]
        )
    hz = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / hz, steal / hz, (busy + steal + idle + iowait) / hz


#: PostgreSQL publishes a backend's counters at most about once a second.
STATS_FLUSH_SECONDS = 1.5


def _polls(s: Any) -> int:
    """recordInfo calls the simulator answered."""
    return sum(int(t["polls"]) for t in s.sim.tasks())


def _callbacks(s: Any) -> int:
    """Callbacks the simulator sent (attempts, duplicates included)."""
    return sum(int(t.get("callbacks", 0)) for t in s.sim.tasks())


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
    p.add_argument(
        "--first-poll", type=float, default=0.0, help="KIE_FIRST_POLL_SECONDS for the workers"
    )
    p.add_argument(
        "--callbacks", action="store_true", help="KIE calls back (runs `worker webhooks`)"
    )
    p.add_argument(
        "--safety-poll",
        type=float,
        default=120.0,
        help="KIE_SAFETY_POLL_SECONDS with --callbacks",
    )
    args = p.parse_args()
    print_json(
        lambda progress: run(
            args.jobs,
            args.render,
            args.workers,
            args.threads,
            progress=progress,
            first_poll=args.first_poll,
            callbacks=args.callbacks,
            safety_poll=args.safety_poll,
        )
    )


if __name__ == "__main__":
    main()
