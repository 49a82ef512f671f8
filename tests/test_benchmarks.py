"""The benchmark scripts still run end to end, on tiny inputs, and report what they promise.

No figure is judged here: speed is measured by running the benchmarks, never asserted by tests.
"""

from __future__ import annotations

import json
import time

import dramatiq
import pytest

from benchmarks import attribution, burst, floor, latency, peers, pipeline
from benchmarks.instrumented_worker import PARTS as WRAPPED
from benchmarks.instrumented_worker import Ledger
from benchmarks.pipeline import CpuMark

PARTS = ("worker", "postgres", "redis", "simulator", "machine")


def test_pipeline_reports_commits_and_cpu_by_process() -> None:
    lines: list[str] = []
    result = pipeline.run(jobs=20, progress=lines.append)
    assert result["finished"] is True
    assert result["succeeded"] == 20
    assert result["jobs_per_s"] > 0
    assert result["commits_per_job"] > 0
    for part in PARTS:
        assert result[f"{part}_cpu_ms_per_job"] >= 0
    assert result["worker_cpu_ms_per_job"] > 0
    assert 0 <= result["steal_percent"] <= 100
    assert lines[0] == "submitting 20 jobs"
    assert lines[-1] == "20 of 20 jobs finished"


def test_pipeline_and_latency_run_with_kie_calling_back() -> None:
    result = pipeline.run(jobs=10, render=1.0, callbacks=True, safety_poll=60.0)
    assert result["succeeded"] == 10 and result["callbacks"] is True
    # Each video polled once, when its callback came (the safety net is a minute away).
    assert result["polls_per_job"] == 1.0 and result["callbacks_per_job"] == 1.0
    assert result["webhooks_cpu_ms_per_job"] > 0
    timed = latency.run(rate=5.0, seconds=1.0, render=0.5, callbacks=True)
    assert timed["callbacks"] is True and timed["measured_notify"] == 5
    assert timed["notify_latency_p99_ms"] >= 0


def test_attribution_charges_the_workers_cpu_to_the_libraries_they_call() -> None:
    result = attribution.run(jobs=20, workers=1, threads=2)
    assert result["succeeded"] == 20
    assert result["missing"] == []  # every wrapped function still exists where it was
    parts = result["parts"]
    # every step goes through these; the report's kind and OpenAI client too
    for part in ("psycopg", "redis-py", "httpx", "openai SDK", "ours: step runtime"):
        assert parts[part]["ms_per_job"] > 0 and parts[part]["calls_per_job"] > 0
    assert set(parts) <= set(WRAPPED)
    attributed = sum(p["ms_per_job"] for p in parts.values())
    assert attributed == pytest.approx(result["attributed_ms_per_job"], abs=0.01 * len(parts))
    assert 0 < result["attributed_ms_per_job"] <= result["worker_process_cpu_ms_per_job"]


def test_nested_calls_are_charged_once_to_the_innermost_part() -> None:
    ledger = Ledger()

    def spin(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    inner = ledger.wrap("inner", lambda: spin(0.05))

    def body() -> None:
        spin(0.05)
        inner()
        spin(0.05)

    outer = ledger.wrap("outer", body)
    ledger.wrap("outer", outer)()  # the same part calling itself is one call
    assert ledger.calls == {"inner": 1, "outer": 1}
    assert ledger.seconds["inner"] == pytest.approx(0.05, abs=0.02)
    assert ledger.seconds["outer"] == pytest.approx(0.10, abs=0.02)


def test_cpu_between_marks_by_part() -> None:
    start = CpuMark({1: ("worker", 1.0), 2: ("postgres", 5.0)}, (10.0, 1.0, 20.0))
    end = CpuMark(
        {1: ("worker", 1.5), 2: ("postgres", 5.25), 3: ("postgres", 0.5)}, (12.0, 1.5, 24.0)
    )
    spent = end.since(start)
    # a process that started between the marks (pid 3) counts from zero
    assert spent == {
        "worker": 0.5,
        "postgres": 0.75,
        "machine": 2.0,
        "stolen": 0.5,
        "all": 4.0,
    }


def test_floor_adds_up_each_operation_by_its_count_per_video() -> None:
    lines: list[str] = []
    result = floor.run(n=50, progress=lines.append)
    ops = result["operations_us"]
    assert set(ops) == set(floor.PER_VIDEO)
    for cost in ops.values():
        assert cost["client_us"] > 0
        assert cost["total_us"] == pytest.approx(cost["client_us"] + cost["server_us"], abs=0.2)
    floor_ms = sum(floor.PER_VIDEO[op] * ops[op]["total_us"] for op in ops) / 1000
    assert result["floor_ms_per_video"] == pytest.approx(floor_ms, abs=0.01)
    assert result["ceiling_jobs_per_s"] == pytest.approx(
        result["cores"] * 1000 / floor_ms, rel=0.01
    )
    assert len(lines) == len(floor.PER_VIDEO)


def test_dramatiq_reference_point_drains_every_message() -> None:
    before = dramatiq.broker.global_broker  # read without creating a default broker
    result = peers.dramatiq_figures(300)
    assert dramatiq.broker.global_broker is before  # its actor lives on a broker of its own
    assert result["version"]
    assert result["sent_per_s"] > 0
    assert result["drained_messages"] == 300
    assert result["drained_per_s"] > 0


def test_burst_runs_both_passes_and_ends_with_its_json(capsys: pytest.CaptureFixture[str]) -> None:
    burst.main(["--users", "6", "--scale", "30", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "time scaled down by 30"
    result = json.loads(lines[-1])
    for key in (
        "fifo_first_video_p95_s",
        "fair_first_video_p95_s",
        "fair_deadline_failures",
        "fair_kie_429_per_100",
        "busy_refusals",
        "fair_eta_error_median",
        "fair_eta_error_p90",
    ):
        assert key in result, key
    assert result["users"] == 6 and result["scale"] == 30
    for label, fair in (("fifo", False), ("fair", True)):
        p = result[label]
        assert p["fair_order"] is fair and p["all_finished"] is True
        assert p["requests"] == 6 and p["busy_refusals"] == 0
        assert p["jobs"] == result["videos"] == p["succeeded"]
        assert p["deadline_failures"] == 0 and p["users_without_video"] == 0
        # unscaled: no video comes sooner than its 60 s render, all within the half hour
        assert 60 <= p["first_video_p50_s"] <= p["first_video_p95_s"] <= p["first_video_max_s"]
        assert p["first_video_max_s"] < 1800
        assert p["kie_create_calls"] >= p["jobs"] and 0 <= p["kie_429_per_100"] <= 100
        assert p["eta_given"] == 6  # every admitted request got its estimate
        assert 0 <= p["eta_error_median"] <= p["eta_error_p90"]
    assert result["fifo_first_video_p95_s"] == result["fifo"]["first_video_p95_s"]
    assert result["fair_eta_error_p90"] == result["fair"]["eta_error_p90"]
    assert set(result["targets"]) == set(burst.targets(result))
    assert "first video p95 (s)" in "\n".join(lines)  # the human table came first
