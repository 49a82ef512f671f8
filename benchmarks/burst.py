"""A burst of users at the provider's limit, in submit order and then fair (issue #20).

    python -m benchmarks.burst [--users 300] [--scale 10] [--seed 20] [--json]

The load: ``--users`` users each submit 1, 3 or 5 videos (a seeded random mix) within 10 s,
against the simulator with ONE KIE account (two keys of it, ``name=secret@account``) held at
KIE's limit, 20 creates per 10 s, and 60-second renders; KIE calls back when a video is done
(`worker webhooks` runs beside two `worker run` processes). Time is scaled down evenly by
``--scale``: the limit's window, the render time, the deadline (30 min) and the submit window are
all divided by it, so one run is minutes rather than an hour. Every time reported is in real,
unscaled seconds (measured × scale); the ETA's error is a ratio, the same either way. What does
not scale: the machine's own latency (a step's hand-offs, about 0.5 s a video, weigh ``scale``
times more; "one video alone" shows it) and the catalog's declared render time, which the
estimate uses until it has history. So each pass first makes ``--warmup`` videos one at a time
(the recent history a running service has), and ``ADMISSION_MAX_WAIT_SECONDS`` is set to its
default scaled: (deadline − the declared render and delivery time) / scale.

It runs twice in one invocation, each pass on a fresh database, Redis namespace and simulator:
first come, first served (``FAIR_ORDER=false``), then fair (``FAIR_ORDER=true``). For each pass:
each user's time from submit to their first video (p50, p95, max), the jobs failed for their
deadline, KIE's 429s per 100 create calls (the simulator's own count), the requests refused as
``Busy``, and the ETA's error |predicted − actual| / actual (median, p90), where predicted is the
``eta_seconds`` submit returned and actual is submit → the request's last job finished.

With ``--json`` the last line is one JSON object: ``fifo_first_video_p95_s``,
``fair_first_video_p95_s``, ``fair_deadline_failures``, ``fair_kie_429_per_100``,
``busy_refusals`` (the fair pass's), ``fair_eta_error_median``, ``fair_eta_error_p90``, each
pass's figures under ``fifo`` and ``fair``, and the targets.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from benchmarks.common import PRODUCT, Progress, Stack, quiet, stack, to_stderr, wait_until
from jobs.video.tiers import seconds_after_gate
from worker.client import Busy, Client
from worker.config import load_settings

#: KIE's published limit for one account: 20 new generations per 10 s.
CREATE_LIMIT, CREATE_WINDOW_SECONDS = 20, 10.0
RENDER_SECONDS = 60.0
DEADLINE_SECONDS = 1800.0
SUBMIT_WINDOW_SECONDS = 10.0
COUNTS = (1, 3, 5)
#: The one account, and its two keys, as KIE_API_KEYS and the simulator's accounts.
ACCOUNT = "burst"
SECRETS = {"burst-a": "bench-kie-burst-a", "burst-b": "bench-kie-burst-b"}
#: The deadline failure's wording (worker.lifecycle.deadline_error).
DEADLINE_WORDS = "within its deadline"
SUBMIT_THREADS = 8


@dataclass(frozen=True)
class Arrival:
    """One user's request: who, how many videos, and when (seconds into the submit window)."""

    user_id: int
    count: int
    at: float


@dataclass
class Submitted:
    """What submit answered: the request's id and ETA, or the ``Busy`` refusal's ETA."""

    arrival: Arrival
    request_id: str | None = None
    eta_seconds: float | None = None
    busy: bool = False


def arrivals(users: int, seed: int, window: float) -> list[Arrival]:
    """``users`` requests of 1, 3 or 5 videos, spread evenly over ``window`` seconds, in a seeded
    random order of users."""
    rng = random.Random(seed)
    ids = list(range(1, users + 1))
    rng.shuffle(ids)
    step = window / users
    return [Arrival(uid, rng.choice(COUNTS), i * step) for i, uid in enumerate(ids)]


def run(
    users: int = 300,
    scale: float = 10.0,
    seed: int = 20,
    workers: int = 2,
    threads: int = 8,
    progress: Progress = quiet,
    warmup: int = 5,
) -> dict[str, Any]:
    if users < 1 or scale <= 0:
        raise ValueError("users must be at least 1 and scale positive")
    load = arrivals(users, seed, SUBMIT_WINDOW_SECONDS / scale)
    passes: dict[str, dict[str, Any]] = {}
    for label, fair in (("fifo", False), ("fair", True)):
        passes[label] = run_pass(load, fair, scale, workers, threads, warmup, progress, label)
    fifo, fair_ = passes["fifo"], passes["fair"]
    result: dict[str, Any] = {
        "users": users,
        "videos": sum(a.count for a in load),
        "scale": scale,
        "time_unit": "real unscaled seconds (measured x scale)",
        "seed": seed,
        "warmup_videos": warmup,
        "fifo_first_video_p95_s": fifo["first_video_p95_s"],
        "fair_first_video_p95_s": fair_["first_video_p95_s"],
        "fair_deadline_failures": fair_["deadline_failures"],
        "fair_kie_429_per_100": fair_["kie_429_per_100"],
        "busy_refusals": fair_["busy_refusals"],
        "fair_eta_error_median": fair_["eta_error_median"],
        "fair_eta_error_p90": fair_["eta_error_p90"],
        "fifo": fifo,
        "fair": fair_,
    }
    result["targets"] = targets(result)
    return result


def targets(r: dict[str, Any]) -> dict[str, bool]:
    """Issue #20's targets, judged on this run (a missing figure misses its target)."""
    fifo, fair = r["fifo_first_video_p95_s"], r["fair_first_video_p95_s"]
    med, p90 = r["fair_eta_error_median"], r["fair_eta_error_p90"]
    return {
        "fair_p95_first_video_at_most_a_third_of_fifo": (
            fifo is not None and fair is not None and fair <= fifo / 3
        ),
        "no_admitted_deadline_failure": r["fair_deadline_failures"] == 0,
        "at_most_1_kie_429_per_100_creates": r["fair_kie_429_per_100"] <= 1.0,
        "eta_median_error_at_most_20_percent": med is not None and med <= 0.20,
        "eta_p90_error_at_most_50_percent": p90 is not None and p90 <= 0.50,
    }


def run_pass(
    load: list[Arrival],
    fair: bool,
    scale: float,
    workers: int,
    threads: int,
    warmup: int,
    progress: Progress,
    label: str,
) -> dict[str, Any]:
    """One pass on a fresh stack: grant, submit the burst on its schedule, wait for every job."""
    sim = {
        "kie": {
            "render_seconds": RENDER_SECONDS / scale,
            "create_limit": CREATE_LIMIT,
            "create_window_seconds": CREATE_WINDOW_SECONDS / scale,
            "query_limit": 0,
            "result_size_bytes": 4096,
            "keys": {secret: {"account": ACCOUNT} for secret in SECRETS.values()},
        }
    }
    deadline = DEADLINE_SECONDS / scale
    settings = {
        "kie_api_keys": ",".join(f"{n}={s}@{ACCOUNT}" for n, s in SECRETS.items()),
        "kie_create_limit": f"{CREATE_LIMIT}/{CREATE_WINDOW_SECONDS / scale:g}",
        "video_deadline_seconds": deadline,
        "fair_order": "true" if fair else "false",
        "admission_max_wait_seconds": admission_max_wait(scale),
    }
    with stack(f"wbench_burst_{label}", sim, **settings) as s:
        s.start_webhooks(safety_poll_seconds=max(1.0, 120.0 / scale))
        s.start_workers(workers, threads)
        progress(f"{label}: starting {workers} workers")
        wait_ready(s)
        progress(f"{label}: {warmup} videos before the burst")
        alone = warm_up(s, warmup, len(load) + 1, deadline + 60, CREATE_WINDOW_SECONDS / scale)
        seen = max((c["seq"] for c in s.sim.calls("kie", "createTask")), default=0)
        for a in load:
            s.client.grant(a.user_id, a.count, idempotency_key=f"burst-{a.user_id}")
        progress(f"{label}: submitting {len(load)} requests")
        t0 = time.monotonic()
        answers = submit_burst(s.client, load)
        submit_wall = time.monotonic() - t0
        admitted = sum(a.arrival.count for a in answers if not a.busy)

        def finished() -> bool:
            ended = s.count(
                "status IN ('succeeded', 'failed', 'cancelled') AND user_id <= %s", (len(load),)
            )
            progress(f"{label}: {ended} of {admitted} jobs finished")
            return ended >= admitted

        done = wait_until(finished, deadline * 1.5 + 60, interval=0.5)
        wall = time.monotonic() - t0
        rows = s.db.fetchall(
            "SELECT request_id::text AS request_id, user_id, status, error, created_at,"
            " finished_at FROM jobs WHERE user_id <= %s",
            (len(load),),
        )
        creates = s.sim.calls("kie", "createTask", since=seen)
        reached = s.db.fetchall(
            "SELECT extract(epoch FROM g.entered_at - j.created_at) AS s FROM gate_turns g"
            " JOIN jobs j ON j.id = g.job_id WHERE j.user_id <= %s",
            (len(load),),
        )
    lag = [float(r["s"]) * scale for r in reached]
    out = {**measure(answers, rows, scale), **create_figures(creates, scale)}
    out.update(
        {
            "fair_order": fair,
            "all_finished": done,
            # one video with no one ahead (the warm-up's median): the floor of the times above
            "alone_video_s": _round(alone * scale if alone is not None else None),
            # submit -> the job reaches the create step's gate (the steps before it), the part
            # of a wait the gate's backlog does not see yet
            "to_gate_p50_s": _round(percentile(lag, 0.50)),
            "to_gate_p95_s": _round(percentile(lag, 0.95)),
            "submit_wall_seconds": round(submit_wall, 2),
            "pass_wall_seconds": round(wall, 1),
        }
    )
    return out


def admission_max_wait(scale: float) -> float:
    """``ADMISSION_MAX_WAIT_SECONDS`` at its default, scaled: the deadline minus the typical time
    after the create slot that the catalog declares for the default chain (unscaled, it would
    exceed the scaled deadline and refuse everyone)."""
    after = seconds_after_gate(load_settings(_env_file=None), {})
    return (DEADLINE_SECONDS - after) / scale


def warm_up(s: Stack, videos: int, first_user: int, timeout: float, window: float) -> float | None:
    """The service has been running: ``videos`` single-video requests made before the burst, so
    the estimate's recent history exists, as in production. Their own client: the burst's
    reads the history afresh, and admits them whatever its estimate (before any history, it
    holds the catalog's unscaled render time). Then one create window passes, so the burst
    starts at a full budget. Returns the median seconds one of them took, submit to finish:
    a video's time with no one ahead, this machine's floor at this scale."""
    unlimited = s.settings.model_copy(update={"admission_max_wait_seconds": 1e9})
    with Client(unlimited, db=s.db) as client:
        for user in range(first_user, first_user + videos):
            client.grant(user, 1)
            client.submit_video(user_id=user, count=1, product=PRODUCT)
    if not wait_until(
        lambda: s.count("status IN ('succeeded', 'failed', 'cancelled')") >= videos, timeout, 0.2
    ):
        raise RuntimeError(f"the warm-up's {videos} videos did not finish in {timeout:g} s")
    time.sleep(window * 1.1)
    row = s.db.fetchone(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at -"
        " created_at)) AS s FROM jobs WHERE status = 'succeeded'"
    )
    return float(row["s"]) if row and row["s"] is not None else None


def create_figures(calls: list[dict[str, Any]], scale: float) -> dict[str, Any]:
    """The burst's createTask calls at the simulator: 429s per 100, and how much of the
    account's budget was used (accepted creates per 10 unscaled seconds, from the first to the
    last; the limit is 20)."""
    ok = sorted(c["at"] for c in calls if c["status"] == 200)
    limited = sum(1 for c in calls if c["status"] == 429)
    span = (ok[-1] - ok[0]) * scale if len(ok) > 1 else 0.0
    # the middle 80 % of the creates: the steady rate, without the first burst or a straggler
    low, high = int(0.1 * (len(ok) - 1)), int(0.9 * (len(ok) - 1))
    middle = (ok[high] - ok[low]) * scale if high > low else 0.0
    gaps = [(b - a, a - ok[0]) for a, b in pairwise(ok)]
    gap, gap_at = max(gaps) if gaps else (None, None)
    return {
        "kie_create_calls": len(calls),
        "kie_429s": limited,
        "kie_429_per_100": round(100 * limited / len(calls), 2) if calls else 0.0,
        "creates_per_10s": round(10 * (len(ok) - 1) / span, 2) if span > 0 else None,
        "creates_per_10s_steady": round(10 * (high - low) / middle, 2) if middle > 0 else None,
        # the longest time the account's budget went unused between two creates
        "longest_create_gap_s": _round(gap * scale if gap is not None else None),
        # ... and when it began, seconds after the burst's first create
        "longest_create_gap_at_s": _round(gap_at * scale if gap_at is not None else None),
    }


def wait_ready(s: Stack, timeout: float = 120.0) -> None:
    """Wait until every worker process says it is ready; fail at once if one exits."""
    logs = [s.logs / f"worker-{i}.log" for i in range(len(s.workers))]

    def ready() -> bool:
        for log, proc in zip(logs, s.workers, strict=True):
            if proc.poll() is not None:
                tail = log.read_text("utf-8", "replace").strip().splitlines()[-1:]
                raise RuntimeError(f"a worker exited ({proc.returncode}): {' '.join(tail)}")
        return all(" ready: " in log.read_text("utf-8", "replace") for log in logs)

    if not wait_until(ready, timeout, 0.2):
        raise RuntimeError(f"the workers were not ready within {timeout:g} s (see {s.logs})")


def submit_burst(client: Client, load: list[Arrival]) -> list[Submitted]:
    """Submit every arrival at its time (a few threads, so a slow submit delays no one else)."""
    start = time.monotonic()
    lock = threading.Lock()
    answers: list[Submitted] = []

    def one(a: Arrival) -> None:
        time.sleep(max(0.0, start + a.at - time.monotonic()))
        try:
            res = client.submit_video(
                user_id=a.user_id,
                count=a.count,
                product=PRODUCT,
                idempotency_key=f"burst-{a.user_id}",
            )
            got = Submitted(a, res.request_id, res.eta_seconds)
        except Busy as refused:
            got = Submitted(a, None, refused.eta_seconds, busy=True)
        with lock:
            answers.append(got)

    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        for future in [pool.submit(one, a) for a in load]:
            future.result()
    return answers


def measure(answers: list[Submitted], rows: list[dict[str, Any]], scale: float) -> dict[str, Any]:
    """The pass's figures from the burst's answers and jobs (the database's clock)."""
    by_request: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_request.setdefault(row["request_id"], []).append(row)
    first_video: list[float] = []
    eta_errors: list[float] = []
    eta_ratios: list[float] = []  # predicted / actual: below 1, the estimate was too short
    no_video = 0
    for a in answers:
        if a.busy or a.request_id is None:
            continue
        jobs = by_request.get(a.request_id, [])
        submitted = min(j["created_at"] for j in jobs)
        delivered = [j["finished_at"] for j in jobs if j["status"] == "succeeded"]
        if delivered:
            first_video.append((min(delivered) - submitted).total_seconds() * scale)
        else:
            no_video += 1
        ended = [j["finished_at"] for j in jobs if j["finished_at"] is not None]
        if a.eta_seconds is not None and len(ended) == len(jobs):
            actual = (max(ended) - submitted).total_seconds()
            eta_errors.append(abs(a.eta_seconds - actual) / actual)
            eta_ratios.append(a.eta_seconds / actual)
    statuses = [r["status"] for r in rows]
    starts = [r["created_at"] for r in rows]
    return {
        "requests": len(answers),
        "busy_refusals": sum(1 for a in answers if a.busy),
        "jobs": len(rows),
        "succeeded": statuses.count("succeeded"),
        "failed": statuses.count("failed"),
        "deadline_failures": sum(
            1 for r in rows if r["status"] == "failed" and DEADLINE_WORDS in (r["error"] or "")
        ),
        # why jobs failed, by the start of their error (a burst should fail none)
        "failure_reasons": dict(
            Counter((r["error"] or "")[:80] for r in rows if r["status"] == "failed")
        ),
        "users_without_video": no_video,
        "first_video_p50_s": _round(percentile(first_video, 0.50)),
        "first_video_p95_s": _round(percentile(first_video, 0.95)),
        "first_video_max_s": _round(max(first_video) if first_video else None),
        "eta_given": sum(1 for a in answers if a.eta_seconds is not None and not a.busy),
        "eta_error_median": _round(percentile(eta_errors, 0.50), 3),
        "eta_error_p90": _round(percentile(eta_errors, 0.90), 3),
        "eta_ratio_median": _round(percentile(eta_ratios, 0.50), 3),
        # the submits' spread, unscaled (the load asks for 10 s)
        "submit_window_s": _round(
            (max(starts) - min(starts)).total_seconds() * scale if starts else None
        ),
    }


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile, linear between the nearest ranks; ``None`` of no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


ROWS: list[tuple[str, str]] = [
    ("requests (users)", "requests"),
    ("refused as Busy", "busy_refusals"),
    ("jobs admitted", "jobs"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("failed for the deadline", "deadline_failures"),
    ("first video p50 (s)", "first_video_p50_s"),
    ("first video p95 (s)", "first_video_p95_s"),
    ("first video max (s)", "first_video_max_s"),
    ("one video alone (s)", "alone_video_s"),
    ("submit -> gate p50 (s)", "to_gate_p50_s"),
    ("submit -> gate p95 (s)", "to_gate_p95_s"),
    ("submit window (s)", "submit_window_s"),
    ("creates per 10 s (limit 20)", "creates_per_10s"),
    ("  middle 80 % of them", "creates_per_10s_steady"),
    ("longest gap between creates (s)", "longest_create_gap_s"),
    ("  it began at (s)", "longest_create_gap_at_s"),
    ("KIE 429s per 100 creates", "kie_429_per_100"),
    ("ETA error median", "eta_error_median"),
    ("ETA error p90", "eta_error_p90"),
    ("ETA / actual, median", "eta_ratio_median"),
    ("pass wall time (real s)", "pass_wall_seconds"),
]


def table(result: dict[str, Any]) -> str:
    """The two passes side by side, and the targets."""
    lines = [
        f"{result['users']} users, {result['videos']} videos, one account at "
        f"{CREATE_LIMIT}/{CREATE_WINDOW_SECONDS:g} s, {RENDER_SECONDS:g} s renders; time scaled "
        f"down by {result['scale']:g} (figures in unscaled seconds, except wall time)",
        f"{'':<28}{'first come':>12}{'fair':>12}",
    ]
    for name, key in ROWS:
        cells = [result[p][key] for p in ("fifo", "fair")]
        lines.append(f"{name:<28}" + "".join(f"{'-' if c is None else c:>12}" for c in cells))
    lines += [f"  {'met' if ok else 'NOT MET'}: {name}" for name, ok in result["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=300)
    p.add_argument(
        "--scale", type=float, default=10.0, help="divide every duration by this (default 10)"
    )
    p.add_argument("--seed", type=int, default=20, help="the users' mix and order")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="videos made before the burst, the estimate's recent history (default 5)",
    )
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    args = p.parse_args(argv)
    show: Callable[[str], None] = to_stderr
    print(f"time scaled down by {args.scale:g}", flush=True)
    result = run(args.users, args.scale, args.seed, args.workers, args.threads, show, args.warmup)
    to_stderr("")
    print(table(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
