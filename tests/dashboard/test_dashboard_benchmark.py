"""`python -m benchmarks.dashboard` runs and reports every page's statements (speed is not
asserted; docs/performance.md has the figures on a million jobs)."""

from __future__ import annotations

from benchmarks.dashboard import run


def test_the_dashboard_benchmark_builds_its_table_and_times_every_statement() -> None:
    result = run(jobs=3000, repeat=1)
    assert result["rows"]["jobs"] == 3000
    assert result["rows"]["events"] == 9000
    timings = result["statements"]
    assert {"overview: whole page", "jobs: chat", "job: whole page", "user: whole page"} <= set(
        timings
    )
    assert all(t["median_ms"] > 0 for t in timings.values())
