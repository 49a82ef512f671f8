"""All benchmarks, on the local PostgreSQL and Redis with the simulator.

    python -m benchmarks.run [--quick] [--json]

With ``--json`` the last line of output is one JSON object with ``submit_per_s``,
``pipeline_jobs_per_s``, ``inflight_jobs``, ``worker_rss_mb_max``, ``start_latency_p50_ms``,
``start_latency_p99_ms`` and ``notify_latency_p99_ms`` (and ``notify_latency_callback_p99_ms``,
the same with KIE calling back), the pipeline's CPU per video by process,
and the floor (``floor_ms_per_video``: the same operations with none of our code; see
``benchmarks/floor.py``), plus the details of each run.
``--quick`` runs smaller versions (a minute or two instead of several).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import capacity, floor, latency, pipeline, submit
from benchmarks.common import Progress

TARGETS = {
    "submit_per_s": (">=", 1500),
    "pipeline_jobs_per_s": (">=", 440),
    "inflight_jobs": (">=", 10_000),
    "worker_rss_mb_max": ("<", 200),
    "start_latency_p99_ms": ("<=", 50),
}


def run_all(quick: bool, console: Console) -> dict[str, Any]:
    plan: list[tuple[str, Callable[[Progress], dict[str, Any]]]] = [
        ("submit", lambda show: submit.run(seconds=3 if quick else 10, progress=show)),
        ("pipeline", lambda show: pipeline.run(jobs=500 if quick else 3000, progress=show)),
        # right after the pipeline, so both see the machine in the same minutes
        ("floor", lambda show: floor.run(n=1000 if quick else 2000, progress=show)),
        (
            "capacity",
            lambda show: capacity.run(
                jobs=2000 if quick else 10_000, render=30 if quick else 120, progress=show
            ),
        ),
        ("latency", lambda show: latency.run(seconds=8 if quick else 20, progress=show)),
        (
            "latency_callbacks",
            lambda show: latency.run(seconds=8 if quick else 20, progress=show, callbacks=True),
        ),
    ]
    details: dict[str, Any] = {}
    with console.status("") as status:
        for i, (name, fn) in enumerate(plan, 1):
            head = f"[{i}/{len(plan)}] {name}"
            status.update(f"{head}: starting…")

            def show(line: str, head: str = head) -> None:
                status.update(f"{head}: {line}")

            details[name] = fn(show)
            console.log(f"{name}: {json.dumps(details[name])}")
    return {
        "submit_per_s": details["submit"]["count_1"]["submits_per_s"],
        "submit_count5_jobs_per_s": details["submit"]["count_5"]["jobs_per_s"],
        "pipeline_jobs_per_s": details["pipeline"]["jobs_per_s"],
        "pipeline_commits_per_job": details["pipeline"]["commits_per_job"],
        **{
            f"pipeline_{part}_cpu_ms_per_job": details["pipeline"].get(f"{part}_cpu_ms_per_job")
            for part in ("worker", "postgres", "redis", "simulator", "machine")
        },
        "pipeline_steal_percent": details["pipeline"].get("steal_percent"),
        "floor_ms_per_video": details["floor"]["floor_ms_per_video"],
        "floor_ceiling_jobs_per_s": details["floor"]["ceiling_jobs_per_s"],
        "inflight_jobs": details["capacity"]["inflight_jobs"],
        "worker_rss_mb_max": details["capacity"]["worker_rss_mb_max"],
        "start_latency_p50_ms": details["latency"]["start_latency_p50_ms"],
        "start_latency_p99_ms": details["latency"]["start_latency_p99_ms"],
        "notify_latency_p99_ms": details["latency"]["notify_latency_p99_ms"],
        "notify_latency_callback_p50_ms": details["latency_callbacks"]["notify_latency_p50_ms"],
        "notify_latency_callback_p99_ms": details["latency_callbacks"]["notify_latency_p99_ms"],
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "details": details,
    }


def _met(key: str, value: float) -> str:
    if key not in TARGETS:
        return ""
    op, target = TARGETS[key]
    ok = {">=": value >= target, "<": value < target, "<=": value <= target}[op]
    return f"{'met' if ok else 'NOT met'} ({op} {target:,})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    args = p.parse_args()
    console = Console(stderr=args.json)
    result = run_all(args.quick, console)
    if args.json:
        print(json.dumps(result))
        return
    t = Table(title="benchmarks" + (" (quick)" if args.quick else ""), title_justify="left")
    for col in ("figure", "value", "target"):
        t.add_column(col)
    for key, value in result.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            t.add_row(key, f"{value:,}", _met(key, float(value)))
    console.print(t)


if __name__ == "__main__":
    main()
