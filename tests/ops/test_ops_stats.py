"""`worker jobs stats`: counts, error mix, credits, stuck jobs and step percentiles from a timeline
written by hand, so every number is known in advance."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import PRODUCT
from worker import ledger, stats
from worker.cli.main import cli
from worker.client import Client
from worker.config import Settings
from worker.db import Database


def _submit(client: Client, user: int) -> int:
    return client.submit_video(user_id=user, chat_id=user, product=PRODUCT, count=1).job_ids[0]


def _timeline(db: Database, job_id: int, events: list[tuple[float, str, str]]) -> None:
    """Events at fixed offsets (seconds) after the job's 'submitted' event."""
    with db.transaction() as conn:
        for offset, event, detail in events:
            conn.execute(
                "INSERT INTO job_events (job_id, at, event, detail)"
                " SELECT %(id)s, at + make_interval(secs => %(offset)s), %(event)s, %(detail)s"
                " FROM job_events WHERE job_id = %(id)s AND event = 'submitted'",
                {"id": job_id, "offset": offset, "event": event, "detail": detail},
            )


def _finish(db: Database, job_id: int, status: str, step: str, **extra: Any) -> None:
    sets = ", ".join(f"{k} = %({k})s" for k in extra)
    with db.transaction() as conn:
        conn.execute(
            f"UPDATE jobs SET status = %(status)s, step = %(step)s, finished_at = now()"
            f"{', ' + sets if sets else ''} WHERE id = %(id)s",
            {"id": job_id, "status": status, "step": step, **extra},
        )
        if status == "succeeded":
            ledger.capture(conn, job_id)
        else:
            ledger.refund(conn, job_id)


@pytest.fixture
def history(client: Client, db: Database) -> dict[str, int]:
    """Six jobs: one from two hours ago (cancelled), two succeeded, one failed, two stuck."""
    client.grant(1, 10)
    old = _submit(client, 1)
    client.cancel(old)
    db.fetchone(
        "UPDATE jobs SET created_at = now() - interval '2 hours' WHERE id = %s RETURNING id", (old,)
    )
    a, b, c, queued, running = (_submit(client, 1) for _ in range(5))

    _timeline(
        db,
        a,
        [
            (1.0, "prompt written", "120 characters with OpenAI key o1"),
            (2.0, "retry", "TEMPORARY from kie HTTP 500: boom; retrying in 1.0 s"),
            (4.0, "task created", "KIE task t1 with key k1"),
            (4.5, "polling", "task t1"),
            (6.0, "provider state", "task t1 is generating after 2 s"),
            (14.5, "video ready", "task t1 finished after 10 s"),
            (15.0, "stored", "65,536 bytes"),
            (16.0, "succeeded", "result sent to the user"),
            (30.0, "result message retry", "late, after the end: not part of any step"),
        ],
    )
    _timeline(
        db,
        b,
        [
            (2.0, "prompt written", ""),
            (5.0, "task created", ""),
            (5.0, "polling", ""),
            (25.0, "video ready", ""),
            (26.0, "stored", ""),
            (27.0, "succeeded", ""),
        ],
    )
    _timeline(
        db,
        c,
        [
            (1.0, "prompt written", ""),
            (2.0, "wait", "RATE_LIMIT from kie HTTP 429: slow down; waiting 1.0 s"),
            (3.0, "failed", "UNAVAILABLE from kie HTTP 505: model withdrawn; 1 credit(s) refunded"),
        ],
    )
    _finish(db, a, "succeeded", "deliver")
    _finish(db, b, "succeeded", "deliver")
    _finish(db, c, "failed", "submit", error_class="UNAVAILABLE", error="model withdrawn")
    db.fetchone(
        "UPDATE jobs SET next_run_at = now() - interval '10 minutes', error_class = 'TEMPORARY',"
        " error = 'boom' WHERE id = %s RETURNING id",
        (queued,),
    )
    db.fetchone(
        "UPDATE jobs SET status = 'running', lease_owner = 'gone:1:1',"
        " lease_expires_at = now() - interval '1 minute' WHERE id = %s RETURNING id",
        (running,),
    )
    return {"old": old, "a": a, "b": b, "c": c, "queued": queued, "running": running}


def test_stats_document(db: Database, history: dict[str, int]) -> None:
    with db.transaction() as conn:
        doc = stats.collect(conn)
    hour, day = doc["windows"]["last_hour"], doc["windows"]["last_day"]

    assert hour["by_status"] == {
        "queued": 1,
        "running": 1,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
    }
    assert day["by_status"]["cancelled"] == 1 and day["jobs"] == 6 and hour["jobs"] == 5
    assert doc["all_time"]["by_status"] == {**day["by_status"]} and not doc["all_time"]["estimated"]

    assert hour["by_error_class"] == {
        "TEMPORARY": {"failed": 0, "active": 1},
        "UNAVAILABLE": {"failed": 1, "active": 0},
    }
    assert {(e["provider"], e["error_class"], e["count"]) for e in hour["provider_errors"]} == {
        ("kie", "TEMPORARY", 1),
        ("kie", "RATE_LIMIT", 1),
        ("kie", "UNAVAILABLE", 1),
    }

    assert hour["credits"] == {"held": 2, "captured": 2, "refunded": 1, "refunds": 1}
    assert day["credits"] == {"held": 2, "captured": 2, "refunded": 2, "refunds": 2}
    assert doc["all_time"]["credits"] == {"held": 2, "captured": 2, "refunded": 2, "refunds": 2}

    steps = {s["step"]: s for s in hour["steps"] if s["kind"] == "video"}
    assert [s["step"] for s in hour["steps"]] == ["prompt", "submit", "poll", "deliver"]
    # prompt: 1, 2, 1 s; submit: 3.5 (with a retry), 3, 2 (wait, then failed there) s;
    # poll: 10, 20 s; deliver: 1.5, 2 s. percentile_cont interpolates linearly.
    expected = {
        "prompt": (3, 1.0, 1.9),
        "submit": (3, 3.0, 3.45),
        "poll": (2, 15.0, 19.5),
        "deliver": (2, 1.75, 1.975),
    }
    for step, (jobs, p50, p95) in expected.items():
        got = steps[step]
        assert got["jobs"] == jobs, step
        assert got["p50_seconds"] == pytest.approx(p50, abs=1e-3), step
        assert got["p95_seconds"] == pytest.approx(p95, abs=1e-3), step
    assert hour["end_to_end"][0]["kind"] == "video" and hour["end_to_end"][0]["jobs"] == 2

    stuck = doc["stuck"]
    assert (stuck["queued_overdue"], stuck["lease_expired"], stuck["total"]) == (1, 1, 2)
    assert stuck["examples"] == sorted([history["queued"], history["running"]])
    assert stuck["oldest_overdue_seconds"] >= 595


def test_all_time_counts_from_planner_statistics(db: Database, history: dict[str, int]) -> None:
    with db.transaction() as conn:
        conn.execute("ANALYZE jobs")
        counts, estimated = stats.status_counts(conn, exact_limit=1)
    # Active jobs are always exact; finished ones come from pg_stats when the table is "big".
    assert counts["queued"] == 1 and counts["running"] == 1
    assert set(counts) == set(stats.STATUSES)
    if estimated:
        assert sum(counts[s] for s in stats.TERMINAL) <= 6


def test_stats_command(
    settings: Settings, history: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", settings.redis_namespace)
    monkeypatch.chdir(settings.storage_dir)

    result = CliRunner().invoke(cli, ["jobs", "stats", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"generated_at", "windows", "all_time", "stuck", "spend", "admission"}
    assert doc["spend"] == {"last_hour": [], "last_day": []}  # no job recorded a spend here
    assert set(doc["windows"]) == {"last_hour", "last_day"}
    assert doc["windows"]["last_hour"]["credits"]["refunded"] == 1

    result = CliRunner().invoke(cli, ["jobs", "stats"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in (
        "jobs by status",
        "error classes",
        "provider errors",
        "step durations",
        "credits",
    ):
        assert title in out
    assert "stuck jobs: 2" in out and "UNAVAILABLE" in out and "15.0 s" in out
