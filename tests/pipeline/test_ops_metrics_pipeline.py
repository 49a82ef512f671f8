"""The /metrics endpoint of a running worker after real jobs went through the pipeline."""

from __future__ import annotations

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.pipeline.conftest import KIE_KEYS, OPENAI_KEYS, Pipeline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_after_jobs(pipeline: Pipeline) -> None:
    port = free_port()
    pipeline.reconfigure(metrics_port=port)
    pipeline.start_worker()

    pipeline.client.grant(21, 5)
    ok = pipeline.submit(21) + pipeline.submit(21)
    assert [j["status"] for j in pipeline.wait(ok)] == ["succeeded", "succeeded"]
    pipeline.sim.configure({"openai": {"available_models": ["gpt-4.1"]}})  # ours is withdrawn
    bad = pipeline.submit(21, count=1)
    assert [j["status"] for j in pipeline.wait(bad)] == ["failed"]

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }

    def get(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    # System-wide gauges, read from PostgreSQL and Redis at scrape time.
    assert get("worker_collector_up", source="postgres") == 1
    assert get("worker_collector_up", source="redis") == 1
    assert get("worker_jobs", status="succeeded") == 2
    assert get("worker_jobs", status="failed") == 1
    assert get("worker_jobs", status="queued") == 0
    assert get("worker_credits", state="captured") == 2
    assert get("worker_credits", state="refunded") == 1
    assert get("worker_credits", state="held") == 0
    assert get("worker_jobs_stuck", reason="lease_expired") == 0
    for queue in ("video", "report", "notify"):  # one queue per job kind, and the outbox
        assert get("worker_queue_dead_letters", queue=queue) == 0
        assert ("worker_queue_messages", (("queue", queue), ("state", "ready"))) in samples
    for name in [*(e.split("=")[0] for e in KIE_KEYS.split(","))]:
        assert get("worker_key_state", provider="kie", key=name, state="active") == 1
    openai_key = OPENAI_KEYS.split("=")[0]
    assert get("worker_key_state", provider="openai", key=openai_key, state="active") == 1

    # This process's counters, on the same endpoint.
    assert get("worker_steps_total", kind="video", step="deliver", outcome="succeeded") >= 2
    assert (
        get("worker_jobs_finished_total", kind="video", status="failed", error_class="UNAVAILABLE")
        >= 1
    )
    assert get("worker_provider_errors_total", provider="openai", error_class="UNAVAILABLE") >= 1
    assert get("worker_alerts_total", what="UNAVAILABLE from openai") >= 1
    assert get("worker_step_duration_seconds_count", kind="video", step="prompt") >= 3
    for family in ("worker_claim_misses", "worker_notifications", "worker_maintenance_actions"):
        assert family in families
    for secret in ("sim-kie-1", "sim-kie-2", "sim-openai-1"):
        assert secret not in text
