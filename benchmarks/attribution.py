"""Where the workers' CPU goes per video, by library: the pipeline with instrumented workers.

    python -m benchmarks.attribution [--jobs 3000] [--workers 2] [--threads 8]

Runs ``benchmarks.pipeline`` with its workers started through
``benchmarks.instrumented_worker``, which charges each thread's CPU to the innermost wrapped
library call it is in (psycopg, redis-py, httpx, the OpenAI SDK, Dramatiq's threads, our
clients and step runtime). For each part it reports the CPU per video, the calls per video and
the CPU per call. ``unattributed_ms_per_job`` is the workers' CPU spent outside every wrapped
call (start-up, the lease keeper, the maintenance loop, the metrics endpoint, Dramatiq's loops
between messages). The wrappers' own cost lands in the parts; compare ``jobs_per_s`` with a
plain ``benchmarks.pipeline`` run in the same minutes to see it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import pipeline
from benchmarks.common import Progress, print_json, quiet


def run(
    jobs: int = 3000,
    workers: int = 2,
    threads: int = 8,
    progress: Progress = quiet,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wbench-attribution-") as out:
        result = pipeline.run(
            jobs,
            0.0,
            workers,
            threads,
            progress=progress,
            worker_module="benchmarks.instrumented_worker",
            worker_env={"ATTRIBUTION_DIR": out},
        )
        dumps = [json.loads(p.read_text()) for p in Path(out).glob("*.json")]
    if len(dumps) != workers:
        raise RuntimeError(f"{len(dumps)} of {workers} workers reported their CPU")
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    for d in dumps:
        for part, s in d["seconds"].items():
            seconds[part] = seconds.get(part, 0.0) + s
        for part, n in d["calls"].items():
            calls[part] = calls.get(part, 0) + n
    process = sum(d["process_cpu_seconds"] for d in dumps)
    attributed = sum(seconds.values())
    parts = {
        part: {
            "ms_per_job": round(s / jobs * 1e3, 3),
            "share_percent": round(100 * s / process, 1) if process else 0.0,
            "calls_per_job": round(calls.get(part, 0) / jobs, 2),
            "us_per_call": round(s / calls[part] * 1e6, 1) if calls.get(part) else 0.0,
        }
        for part, s in sorted(seconds.items(), key=lambda kv: -kv[1])
    }
    return {
        "jobs": jobs,
        "workers": workers,
        "threads": threads,
        "jobs_per_s": result["jobs_per_s"],
        "succeeded": result["succeeded"],
        "worker_process_cpu_ms_per_job": round(process / jobs * 1e3, 3),
        "attributed_ms_per_job": round(attributed / jobs * 1e3, 3),
        "unattributed_ms_per_job": round((process - attributed) / jobs * 1e3, 3),
        "parts": parts,
        "missing": sorted({m for d in dumps for m in d["missing"]}),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    print_json(lambda progress: run(args.jobs, args.workers, args.threads, progress))


if __name__ == "__main__":
    main()
