"""What a step learned is committed under its claim token together with what it does next.

A provider task a step creates is committed with the step's move, in one statement; if the job
was taken over meanwhile, the move changes nothing and the task is put on the job's timeline as
orphaned. What a step learned before sending the user a message (where the file is stored) is
committed with the claim of that message; a step that lost its job sends nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.pipeline.conftest import Pipeline
from worker import lifecycle
from worker.context import StepContext
from worker.kinds import JobKind
from worker.outcomes import Again, Next, Outcome, Succeed
from worker.runner import WorkerProcess
from worker.runtime import Runtime

#: What each after-commit callback of ``_create`` saw: (job id, the task its row held then).
AFTER_COMMIT: list[tuple[int, str | None]] = []


def _create(ctx: StepContext) -> Outcome:
    """Pretend a provider accepted a task; optionally lose the job to a rescue meanwhile."""
    if ctx.payload.get("taken_over"):
        with ctx.services.db.connection() as conn:
            conn.execute("UPDATE jobs SET claims = claims + 1 WHERE id = %s", (ctx.job_id,))

    def seen() -> None:
        with ctx.services.db.connection() as conn:
            AFTER_COMMIT.append((ctx.job_id, lifecycle.task_of(conn, ctx.job_id)))

    ctx.after_commit(seen)
    return Next(
        "wait",
        event="task created",
        delay=float(ctx.payload["delay"]),
        provider_task_id=f"task-{ctx.job_id}",
        key_name="k1",
        state={"generation": 1},
    )


def _wait(ctx: StepContext) -> Outcome:
    return Succeed(None, detail=f"task {ctx.provider_task_id} done")


def _send(ctx: StepContext) -> Outcome:
    """Claim and send the result message, committing a "stored" fact with the claim."""
    if ctx.payload.get("taken_over"):
        with ctx.services.db.connection() as conn:
            conn.execute("UPDATE jobs SET claims = claims + 1 WHERE id = %s", (ctx.job_id,))
    chat_id = ctx.chat_id
    detail = ctx.send_once(
        "result",
        "your file",
        lambda tg: tg.send_message(chat_id, "your file"),
        state={"stored_size": 3},
        event="stored",
        detail="3 bytes",
    )
    after = ctx.payload.get("after_send")
    if after == "taken_over":
        with ctx.services.db.connection() as conn:
            conn.execute("UPDATE jobs SET claims = claims + 1 WHERE id = %s", (ctx.job_id,))
    if after == "again":
        return Again(delay=60, event="sent, waiting", detail=detail)
    return Succeed(None, detail=detail)


HANDLERS = {"create": _create, "wait": _wait, "send": _send}

TASKS = JobKind(
    name="tasks",
    steps=("create", "wait", "send"),
    validate=lambda request, settings: dict(request),
    price=lambda settings, payload: 0,
    deadline=lambda settings, payload: 600.0,
    handlers_module=__name__,
)


@pytest.fixture
def runtime(worker: WorkerProcess) -> Runtime:
    """A runtime for the test kind, on the hand-driven worker's services."""
    AFTER_COMMIT.clear()  # job ids start again at 1 in every test's database
    return Runtime(worker.services, {"tasks": TASKS})


def _row(p: Pipeline, job: int) -> dict[str, Any]:
    row = p.db.fetchone(
        "SELECT status, step, provider_task_id, key_name, state->>'generation' AS generation"
        " FROM jobs WHERE id = %s",
        (job,),
    )
    assert row is not None
    return row


def _events(p: Pipeline, job: int) -> list[tuple[str, str]]:
    rows = p.db.fetchall(
        "SELECT event, detail FROM job_events WHERE job_id = %s ORDER BY id", (job,)
    )
    return [(r["event"], r["detail"]) for r in rows]


def test_a_delayed_move_commits_the_task_with_it(pipeline: Pipeline, runtime: Runtime) -> None:
    job = pipeline.submit_kind("tasks", "create", 31, {"delay": 30})
    assert runtime.execute("tasks", "create", job) == "next"
    assert _row(pipeline, job) == {
        "status": "queued",
        "step": "wait",
        "provider_task_id": f"task-{job}",
        "key_name": "k1",
        "generation": "1",
    }
    assert [e for e, _ in _events(pipeline, job)] == ["submitted", "task created"]
    # the after-commit callback ran once the task was on the row
    assert (job, f"task-{job}") in AFTER_COMMIT


def test_a_move_run_at_once_commits_the_task_too(pipeline: Pipeline, runtime: Runtime) -> None:
    job = pipeline.submit_kind("tasks", "create", 32, {"delay": 0})
    assert runtime.execute("tasks", "create", job) == "succeeded"  # wait ran on this thread
    row = _row(pipeline, job)
    assert (row["status"], row["provider_task_id"], row["key_name"]) == (
        "succeeded",
        f"task-{job}",
        "k1",
    )
    assert _events(pipeline, job)[-1] == ("succeeded", f"task task-{job} done")


def test_a_task_created_after_a_takeover_is_recorded_as_orphaned(
    pipeline: Pipeline, runtime: Runtime
) -> None:
    for delay, user in ((30, 33), (0, 34)):  # through RESCHEDULE and through ADVANCE
        job = pipeline.submit_kind("tasks", "create", user, {"delay": delay, "taken_over": True})
        assert runtime.execute("tasks", "create", job) == "lease-lost"
        row = _row(pipeline, job)
        assert (row["status"], row["step"], row["provider_task_id"]) == ("running", "create", None)
        events = _events(pipeline, job)
        assert [e for e, _ in events] == ["submitted", "orphaned task"]
        assert f"task-{job} (key k1)" in events[-1][1]
        assert job not in [j for j, _ in AFTER_COMMIT]  # nothing was committed


def test_no_orphan_when_the_move_committed_but_its_answer_was_lost(
    pipeline: Pipeline, runtime: Runtime
) -> None:
    # with_db_retry re-runs a move whose commit succeeded but whose answer a dropped
    # connection lost; the fence then refuses it. The row holds the task, so it is no orphan.
    job = pipeline.submit_kind("tasks", "create", 35, {"delay": 30})
    assert runtime.execute("tasks", "create", job) == "next"
    with pipeline.db.connection() as conn:
        conn.execute("UPDATE jobs SET next_run_at = now() WHERE id = %s", (job,))
        c = lifecycle.claim(conn, job, "wait", "test", 30.0)
    assert c is not None
    ctx = StepContext(c, TASKS, runtime.services)
    runtime._orphaned(ctx, f"task-{job}", "k1")
    assert [e for e, _ in _events(pipeline, job)] == ["submitted", "task created"]
    runtime._orphaned(ctx, "another-task", "k1")
    assert [e for e, _ in _events(pipeline, job)][-1] == "orphaned task"


def _note(p: Pipeline, job: int) -> tuple[str, int, bool] | None:
    """The result message's row: (status, attempts, has a Telegram message id)."""
    row = p.db.fetchone(
        "SELECT status, attempts, message_id IS NOT NULL AS has_id FROM notifications"
        " WHERE job_id = %s AND kind = 'result' AND NOT outbox",
        (job,),
    )
    return (row["status"], row["attempts"], row["has_id"]) if row else None


def _stored(p: Pipeline, job: int) -> str | None:
    row = p.db.fetchone("SELECT state->>'stored_size' AS size FROM jobs WHERE id = %s", (job,))
    assert row is not None
    return None if row["size"] is None else str(row["size"])


def test_what_was_learned_commits_with_the_claim_of_the_message(
    pipeline: Pipeline, runtime: Runtime
) -> None:
    job = pipeline.submit_kind("tasks", "send", 36, {})
    assert runtime.execute("tasks", "send", job) == "succeeded"
    assert _stored(pipeline, job) == "3"
    assert _note(pipeline, job) == ("sent", 1, True)
    assert _events(pipeline, job) == [
        ("submitted", "a test tasks job"),
        ("stored", "3 bytes"),
        ("succeeded", "result sent to the user"),
    ]
    assert [m["text"] for m in pipeline.messages(36)] == ["your file"]


def test_a_step_that_lost_its_job_neither_records_nor_sends(
    pipeline: Pipeline, runtime: Runtime
) -> None:
    job = pipeline.submit_kind("tasks", "send", 37, {"taken_over": True})
    assert runtime.execute("tasks", "send", job) == "lease-lost"
    assert _stored(pipeline, job) is None
    assert _note(pipeline, job) is None
    assert [e for e, _ in _events(pipeline, job)] == ["submitted"]
    assert pipeline.messages(37) == []


def test_a_message_already_sent_is_not_sent_again_but_the_facts_are_kept(
    pipeline: Pipeline, runtime: Runtime
) -> None:
    job = pipeline.submit_kind("tasks", "send", 38, {})
    with pipeline.db.connection() as conn:  # an earlier run crashed mid-send
        conn.execute(
            "INSERT INTO notifications (job_id, kind, chat_id, status, text, attempts, outbox)"
            " VALUES (%s, 'result', 38, 'sending', 'your file', 1, false)",
            (job,),
        )
    assert runtime.execute("tasks", "send", job) == "succeeded"
    assert _stored(pipeline, job) == "3"
    assert _note(pipeline, job) == ("sending", 1, False)
    assert _events(pipeline, job)[1:] == [
        ("stored", "3 bytes"),
        ("succeeded", "an earlier attempt may have sent the result message; not sent again"),
    ]
    assert pipeline.messages(38) == []


@pytest.mark.parametrize(
    ("after_send", "label", "status"),
    [("again", "again", "queued"), ("taken_over", "lease-lost", "running")],
)
def test_a_sent_message_is_marked_when_the_step_does_not_succeed(
    pipeline: Pipeline, runtime: Runtime, after_send: str, label: str, status: str
) -> None:
    # The mark usually rides in the step's terminal call; a step that goes on waiting, or whose
    # terminal call the fence refuses, still leaves its sent message marked sent.
    user = 39 if after_send == "again" else 40
    job = pipeline.submit_kind("tasks", "send", user, {"after_send": after_send})
    assert runtime.execute("tasks", "send", job) == label
    assert _note(pipeline, job) == ("sent", 1, True)
    row = pipeline.db.fetchone("SELECT status FROM jobs WHERE id = %s", (job,))
    assert row is not None and row["status"] == status
    assert [m["text"] for m in pipeline.messages(user)] == ["your file"]
