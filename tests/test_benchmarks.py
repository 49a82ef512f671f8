"""The benchmark scripts still run end to end, on tiny inputs, and report what they promise.

No figure is judged here: speed is measured by running the benchmarks, never asserted by tests.
"""

from __future__ import annotations

import time

import dramatiq
import pytest

from benchmarks import attribution, floor, latency, peers, pipeline
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
