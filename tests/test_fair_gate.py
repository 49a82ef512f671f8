"""Fair order at KIE's create limit (worker.fair_gate), with two real `worker run` processes and
one KIE account at a tight create limit: the simulator's record of createTask calls is the order
the slots were given in."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.pipeline import conftest as _fixtures
from tests.pipeline.conftest import Pipeline, wait_for

#: The fixtures these tests use (real PostgreSQL, Redis, simulator; `worker run` processes).
pipeline, sim = _fixtures.pipeline, _fixtures.sim


def _start(pipeline: Pipeline, *, limit: str, **overrides: Any) -> None:
    # One account (one key) at ``limit``; two worker processes of 4 threads each.
    pipeline.reconfigure(
        kie_api_keys="k1=sim-kie-1",
        kie_create_limit=limit,
        video_deadline_seconds=600.0,
        **overrides,
    )
    pipeline.sim.configure({"kie": {"render_seconds": 0.5}})
    for instance in (1, 2):
        pipeline.start_process(threads=4, instance=instance)


def _creates(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The accepted creates, in the order KIE saw them: ``job``, ``user``, ``at`` (epoch)."""
    jobs = {
        r["provider_task_id"]: r
        for r in pipeline.db.fetchall(
            "SELECT id, user_id, provider_task_id FROM jobs WHERE provider_task_id IS NOT NULL"
        )
    }
    calls = sorted(
        (
            c
            for c in pipeline.sim.calls("kie", "createTask")
            if c["endpoint"] == "createTask" and c["status"] == 200 and c["task_id"] in jobs
        ),
        key=lambda c: c["seq"],
    )
    return [
        {"job": jobs[c["task_id"]]["id"], "user": jobs[c["task_id"]]["user_id"], "at": c["at"]}
        for c in calls
    ]


def _gate(pipeline: Pipeline, user_id: int) -> dict[str, int]:
    row = pipeline.db.fetchone(
        "SELECT count(*) FILTER (WHERE passed_at IS NULL) AS waiting,"
        " count(*) FILTER (WHERE passed_at IS NOT NULL) AS passed"
        " FROM gate_turns WHERE user_id = %s",
        (user_id,),
    )
    assert row is not None
    return {"waiting": int(row["waiting"]), "passed": int(row["passed"])}


def _entered(pipeline: Pipeline, job_id: int) -> float:
    """When the job reached the gate (epoch seconds)."""
    row = wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT entered_at FROM gate_turns WHERE job_id = %s", (job_id,)
        ),
        30,
        f"job {job_id} at the gate",
    )
    at: datetime = row["entered_at"]
    return at.timestamp()


def _backlog_of(pipeline: Pipeline, user_id: int, jobs: int, *, waiting: int) -> None:
    """Wait until all ``jobs`` of the user reached the gate and ``waiting`` of them still wait."""
    wait_for(
        lambda: (
            (g := _gate(pipeline, user_id))["waiting"] + g["passed"] == jobs
            and g["waiting"] >= waiting
        ),
        60,
        f"user {user_id}'s {jobs} jobs at the gate",
    )


def _slots_before(pipeline: Pipeline, job_id: int) -> int:
    """How many creates went to other jobs between the job reaching the gate and its create."""
    entered = _entered(pipeline, job_id)
    order = _creates(pipeline)
    mine = next(i for i, c in enumerate(order) if c["job"] == job_id)
    return sum(1 for c in order[:mine] if c["at"] > entered)


def _submit_many(pipeline: Pipeline, user_id: int, jobs: int, **product: Any) -> list[int]:
    pipeline.client.grant(user_id, jobs)
    ids: list[int] = []
    for n in range(jobs // 5):
        ids += pipeline.submit(user_id, count=5, title=f"Item {user_id}-{n}", **product)
    return ids


def _in_own_order(order: list[dict[str, Any]]) -> bool:
    by_user: dict[int, list[int]] = {}
    for c in order:
        by_user.setdefault(c["user"], []).append(c["job"])
    return all(jobs == sorted(jobs) for jobs in by_user.values())


def test_a_new_users_job_takes_one_of_the_next_two_slots(pipeline: Pipeline) -> None:
    _start(pipeline, limit="2/1")
    heavy = _submit_many(pipeline, 301, 20)
    _backlog_of(pipeline, 301, 20, waiting=14)
    (light,) = pipeline.submit(302, count=1, credits=1, title="One mug")
    wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT 1 FROM jobs WHERE id = %s AND provider_task_id IS NOT NULL", (light,)
        ),
        30,
        "the light user's create",
    )
    assert _slots_before(pipeline, light) <= 1
    # Meanwhile the heavy user's jobs still wait: the light one did not just come last.
    assert _gate(pipeline, 301)["waiting"] >= 8
    done = pipeline.wait([*heavy, light], timeout=90)
    assert {j["status"] for j in done} == {"succeeded"}
    order = _creates(pipeline)
    assert len(order) == 21 and _in_own_order(order)
    assert pipeline.ledger_ok()


def test_submit_order_when_fairness_is_off(pipeline: Pipeline) -> None:
    _start(pipeline, limit="2/1", fair_order=False)
    heavy = _submit_many(pipeline, 311, 15)
    _backlog_of(pipeline, 311, 15, waiting=8)
    (light,) = pipeline.submit(312, count=1, credits=1, title="One mug")
    pipeline.wait([*heavy, light], timeout=90)
    order = [c["job"] for c in _creates(pipeline)]
    # First come, first served: the light user's job waits behind every heavy job.
    assert order == sorted(order) and order[-1] == light


def test_a_higher_tier_goes_first(pipeline: Pipeline, tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(
        'default = "standard"\n'
        "[tiers.standard]\nprice = 1\n"
        'chain = ["bytedance/seedance-2-mini"]\n'
        "[tiers.premium]\nprice = 1\npriority = 5\n"
        'chain = ["bytedance/seedance-2-mini"]\n',
        encoding="utf-8",
    )
    _start(pipeline, limit="2/1", video_tiers_file=str(tiers))
    heavy = _submit_many(pipeline, 321, 10)
    # Another user's standard jobs, submitted after, wait in the same rounds.
    others = _submit_many(pipeline, 322, 5)
    _backlog_of(pipeline, 321, 10, waiting=4)
    (vip,) = pipeline.submit(323, count=1, credits=1, title="Premium mug", tier="premium")
    wait_for(
        lambda: pipeline.db.fetchone(
            "SELECT 1 FROM jobs WHERE id = %s AND provider_task_id IS NOT NULL", (vip,)
        ),
        30,
        "the premium create",
    )
    assert _slots_before(pipeline, vip) <= 1
    pipeline.wait([*heavy, *others, vip], timeout=90)
    assert _in_own_order(_creates(pipeline))


def test_the_order_survives_a_restart(pipeline: Pipeline) -> None:
    _start(pipeline, limit="2/1")
    heavy = _submit_many(pipeline, 331, 20)
    _backlog_of(pipeline, 331, 20, waiting=16)
    light = _submit_many(pipeline, 332, 5)
    _backlog_of(pipeline, 332, 5, waiting=3)
    # Every worker stops (drains); the turns stay in PostgreSQL.
    pipeline.stop()
    before = pipeline.db.fetchall(
        "SELECT job_id, turn FROM gate_turns WHERE passed_at IS NULL ORDER BY job_id"
    )
    assert len(before) >= 10
    waiting_light = [r["job_id"] for r in before if r["job_id"] in light]
    assert waiting_light
    restarted_at = len(_creates(pipeline))
    for instance in (3, 4):
        pipeline.start_process(threads=4, instance=instance)
    pipeline.wait([*heavy, *light], timeout=120)
    order = _creates(pipeline)
    assert _in_own_order(order)
    # Round-robin after the restart: until the light user's last create, the heavy user never
    # takes two slots in a row.
    users = [c["user"] for c in order]
    last = len(users) - 1 - users[::-1].index(332)
    assert last >= restarted_at
    run = users[restarted_at : last + 1]
    assert all(not (a == b == 331) for a, b in itertools.pairwise(run)), users
    assert pipeline.ledger_ok()
