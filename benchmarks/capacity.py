"""How many videos two worker processes carry in flight, and their memory while they do.

    python -m benchmarks.capacity [--jobs 10000] [--render 120] [--workers 2]

The simulator renders each video for ``--render`` seconds with its rate limits set high, so the
worker's own capacity is what is measured: jobs waiting on the provider at once (step ``poll``),
sampled every second, and the largest resident memory of a worker process.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import (
    Progress,
    fast_simulator,
    print_json,
    quiet,
    rss_mb,
    stack,
    submit_backlog,
)


def run(
    jobs: int = 10_000,
    render: float = 120.0,
    workers: int = 2,
    threads: int = 8,
    progress: Progress = quiet,
) -> dict[str, Any]:
    sim = fast_simulator(render)
    with stack("wbench_cap", sim, video_deadline_seconds=render * 10 + 600) as s:
        t0 = time.monotonic()
        progress(f"submitting {jobs:,} jobs")
        submit_backlog(s.client, jobs)
        submit_s = time.monotonic() - t0
        s.start_workers(workers, threads)
        peak = 0
        peak_at = 0.0
        rss_max = 0.0
        started = time.monotonic()
        # Sample until the in-flight count has fallen well below its peak (videos finishing),
        # or the whole backlog has been submitted to the provider and the render time passed.
        while True:
            time.sleep(1.0)
            now = time.monotonic() - started
            inflight = s.count("step = 'poll' AND status IN ('queued', 'running')")
            if inflight > peak:
                peak, peak_at = inflight, now
            rss_max = max([rss_max] + [rss_mb(w.pid) for w in s.workers])
            waiting = s.count("step IN ('prompt', 'submit') AND status IN ('queued', 'running')")
            progress(
                f"t+{now:.0f}s: {inflight:,} in flight (peak {peak:,}), {waiting:,} not yet at "
                f"the provider, worker RSS max {rss_max:.0f} MB"
            )
            if waiting == 0 and inflight < peak * 0.5:
                break
            if now > render * 3 + 600:
                break
        return {
            "jobs": jobs,
            "render_seconds": render,
            "workers": workers,
            "threads": threads,
            "submit_seconds": round(submit_s, 1),
            "inflight_jobs": peak,
            "inflight_peak_after_seconds": round(peak_at, 1),
            "worker_rss_mb_max": round(rss_max, 1),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--render", type=float, default=120.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    print_json(
        lambda progress: run(args.jobs, args.render, args.workers, args.threads, progress=progress)
    )


if __name__ == "__main__":
    main()
