"""`python -m benchmarks.scale` end to end, small: a private PostgreSQL with its own
max_connections, a few processes at default settings, the probe and the sampler."""

from __future__ import annotations

from benchmarks import scale


def test_the_scale_benchmark_reports_connections_probes_and_throughput() -> None:
    result = scale.run(jobs=30, workers=3, baseline_workers=1, max_connections=40, timeout=180)
    assert result["server"] == "private" and result["max_connections"] == 40
    many, two = result["phases"]["many"], result["phases"]["two"]
    for phase, workers in ((two, 1), (many, 3)):
        assert phase["finished"] and phase["succeeded"] == 30 and phase["all_ready"]
        assert phase["exits"] == [] and phase["workers"] == workers
        assert phase["db_pool_max"] == 3 and phase["threads"] == 8  # the defaults
        # The workers' pools (3 each) plus the benchmark's own client (at most 4).
        assert 1 <= phase["peak_worker_connections"] <= workers * 3 + 4, phase
        assert phase["probes"] > 0 and phase["probe_failures"] == 0
        assert phase["jobs_per_s"] > 0 and phase["workers_rss_mb"] > 0
    assert set(result["targets"]) == {
        "peak_connections_at_most_80",
        "probe_within_100_ms",
        "no_instance_exits",
        "not_slower_than_two_processes",
        "all_finished",
    }
    assert result["targets"]["no_instance_exits"] and result["targets"]["all_finished"]
