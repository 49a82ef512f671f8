"""Latency: submit → the prompt step starting, and the provider finishing → the user's message.

    python -m benchmarks.latency [--rate 5] [--seconds 20] [--render 3] [--callbacks]

Jobs are submitted at ``--rate`` per second to two idle worker processes. Start latency is the
job's first claim minus its creation (both on PostgreSQL's clock); notify latency is the time the
simulator received the video minus the time it marked the task done (both on its clock). With
``--callbacks`` the simulator calls back when a task ends (`worker webhooks` runs too), so notify
latency no longer waits for the next poll on KIE's schedule.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from benchmarks.common import PRODUCT, Progress, fast_simulator, print_json, quiet, stack


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def run(
    rate: float = 5.0,
    seconds: float = 20.0,
    render: float = 3.0,
    workers: int = 2,
    threads: int = 8,
    progress: Progress = quiet,
    callbacks: bool = False,
) -> dict[str, Any]:
    sim = fast_simulator(render)
    with stack("wbench_lat", sim) as s:
        if callbacks:
            s.start_webhooks()
        s.start_workers(workers, threads)
        time.sleep(3.0)  # workers up and idle
        n = int(rate * seconds)
        s.client.grant(1, n)
        ids: list[int] = []
        t0 = time.monotonic()
        for i in range(n):
            target = t0 + i / rate
            time.sleep(max(0.0, target - time.monotonic()))
            progress(f"{i + 1:,} of {n:,} jobs submitted at {rate:g}/s")
            ids += s.client.submit_video(user_id=1, chat_id=100_000 + i, product=PRODUCT).job_ids
        deadline = time.monotonic() + render + 120
        while time.monotonic() < deadline:
            ok = s.count("id = ANY(%s) AND status = 'succeeded'", (ids,))
            progress(f"{ok:,} of {n:,} videos delivered")
            if ok >= n:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        rows = s.db.fetchall(
            "SELECT id, chat_id, provider_task_id, created_at, started_at FROM jobs"
            " WHERE id = ANY(%s)",
            (ids,),
        )
        start_ms = [
            (r["started_at"] - r["created_at"]).total_seconds() * 1000
            for r in rows
            if r["started_at"]
        ]
        tasks = {t["task_id"]: t for t in s.sim.tasks()}
        sent: dict[int, float] = {}
        for m in s.sim.messages():
            if m["method"] == "sendVideo":
                sent.setdefault(int(m["chat_id"]), _epoch(m["at"]))
        notify_ms = []
        for r in rows:
            task = tasks.get(r["provider_task_id"] or "")
            if task and int(r["chat_id"]) in sent and task.get("complete_at"):
                notify_ms.append((sent[int(r["chat_id"])] - _epoch(task["complete_at"])) * 1000)
        return {
            "jobs": n,
            "rate_per_s": rate,
            "callbacks": callbacks,
            "start_latency_p50_ms": round(_pct(start_ms, 0.5), 1),
            "start_latency_p99_ms": round(_pct(start_ms, 0.99), 1),
            "notify_latency_p50_ms": round(_pct(notify_ms, 0.5), 1),
            "notify_latency_p99_ms": round(_pct(notify_ms, 0.99), 1),
            "measured_notify": len(notify_ms),
        }


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--render", type=float, default=3.0)
    p.add_argument(
        "--callbacks", action="store_true", help="KIE calls back (runs `worker webhooks`)"
    )
    args = p.parse_args()
    print_json(
        lambda progress: run(
            args.rate, args.seconds, args.render, progress=progress, callbacks=args.callbacks
        )
    )


if __name__ == "__main__":
    main()
