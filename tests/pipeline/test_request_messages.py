"""Messages about a whole request, through the real worker, PostgreSQL, Redis and the simulator:
one summary once the last video of a request of several ended (however it ended), sent once;
one "still working" message per request; the user's language; the user's text shown as typed.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from tests.pipeline.conftest import Pipeline, wait_for
from worker import lifecycle
from worker.errors import ErrorClass, ProviderError
from worker.sql.jobs import SUBMIT
from worker.status import JobStatus

TITLE = "Red ceramic mug"


def _buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message["reply_markup"]
    assert isinstance(markup, dict)
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def _summaries(p: Pipeline, job_ids: list[int]) -> list[dict[str, Any]]:
    """The summary rows of the request these jobs belong to."""
    return p.db.fetchall(
        "SELECT n.* FROM notifications n JOIN jobs j ON j.request_id = n.request_id"
        " WHERE j.id = %s AND n.kind = 'summary'",
        (job_ids[0],),
    )


def _request_messages(p: Pipeline, job_ids: list[int], kind: str) -> int:
    row = p.db.fetchone(
        "SELECT count(*) AS n FROM notifications"
        " WHERE kind = %s AND (job_id = ANY(%s) OR request_id IN"
        " (SELECT request_id FROM jobs WHERE id = ANY(%s)))",
        (kind, job_ids, job_ids),
    )
    assert row is not None
    return int(row["n"])


def _available(p: Pipeline, user_id: int) -> int:
    return p.client.balance(user_id).available


def _texts(p: Pipeline, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in p.messages(chat_id)]


def test_three_videos_then_one_summary(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    jobs = pipeline.submit(31, count=3, credits=3, title=TITLE)
    assert [j["status"] for j in pipeline.wait(jobs)] == ["succeeded"] * 3

    *videos, summary = pipeline.messages(31)
    assert sorted(v["method"] for v in videos) == ["sendVideo"] * 3
    assert sorted(_buttons(v)[0][1] for v in videos) == [f"again:{j}" for j in jobs]
    assert summary["method"] == "sendMessage"
    assert summary["text"] == f"3 of 3 videos of “{TITLE}” are ready."
    assert _buttons(summary) == [("Make another with this product", f"again:{max(jobs)}")]
    (row,) = _summaries(pipeline, jobs)
    assert row["status"] == "sent" and row["text"] == summary["text"]
    # `worker jobs show` of the job that queued it shows it on the timeline.
    assert "summary message sent" in pipeline.events(int(row["job_id"]))
    assert _available(pipeline, 31) == 0


def test_a_failed_video_is_counted_and_its_credit_refunded(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 3.0}})
    pipeline.start_worker()
    jobs = pipeline.submit(32, count=3, credits=5, title=TITLE)
    tasks = wait_for(lambda: len(pipeline.sim.tasks()) == 3 and pipeline.sim.tasks(), 30, "tasks")
    # A permanent refusal of one task (USER_ERROR: no retry, a refund).
    pipeline.sim.fail_task(tasks[0]["task_id"], "422", "the image was not accepted")
    finished = pipeline.wait(jobs)
    assert sorted(j["status"] for j in finished) == ["failed", "succeeded", "succeeded"]
    failed = next(j for j in finished if j["status"] == "failed")
    assert failed["error_class"] == "USER_ERROR"

    texts = _texts(pipeline, 32)
    assert len(texts) == 4
    assert texts[-1] == f"2 of 3 videos of “{TITLE}” are ready, 1 failed and 1 credit was refunded."
    assert sum(t.startswith("Sorry, your video") for t in texts) == 1
    succeeded = max(j["id"] for j in finished if j["status"] == "succeeded")
    assert _buttons(pipeline.messages(32)[-1])[0][1] == f"again:{succeeded}"
    assert len(_summaries(pipeline, jobs)) == 1
    assert _available(pipeline, 32) == 5 - 2
    assert pipeline.ledger_ok()


def test_a_single_video_gets_no_summary(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    jobs = pipeline.submit(33, count=1, credits=1, title=TITLE)
    pipeline.wait(jobs)
    (video,) = pipeline.messages(33)
    assert video["method"] == "sendVideo"
    assert _buttons(video) == [("Make another with this product", f"again:{jobs[0]}")]
    assert _summaries(pipeline, jobs) == []


def test_cancelled_jobs_count_and_the_summary_goes_once(pipeline: Pipeline) -> None:
    # No worker yet: the jobs wait, queued, and one of each request is cancelled.
    jobs = pipeline.submit(34, count=3, credits=3, title=TITLE)
    pipeline.client.cancel(jobs[1], user_id=34)
    # A request whose jobs are all cancelled: the last cancel queues the summary inside its
    # transaction, and the maintenance loop's outbox re-send sends it.
    gone = pipeline.submit(35, count=3, credits=3, title=TITLE)
    for job in gone:
        pipeline.client.cancel(job)
    assert len(_summaries(pipeline, gone)) == 1
    pipeline.start_worker()
    pipeline.wait(jobs)
    pipeline.wait(gone)

    texts = _texts(pipeline, 34)
    assert len(texts) == 3
    assert texts[-1] == (
        f"2 of 3 videos of “{TITLE}” are ready, 1 was cancelled and 1 credit was refunded."
    )
    (summary,) = pipeline.messages(35)
    assert summary["text"] == (
        f"0 of 3 videos of “{TITLE}” are ready, 3 were cancelled and 3 credits were refunded."
    )
    assert _buttons(summary) == [("Make another with this product", f"again:{min(gone)}")]
    assert [len(_summaries(pipeline, r)) for r in (jobs, gone)] == [1, 1]
    assert _available(pipeline, 34) == 1 and _available(pipeline, 35) == 3


def test_jobs_failed_by_their_deadline_in_the_maintenance_loop_get_the_summary(
    pipeline: Pipeline,
) -> None:
    from worker.broker import make_broker
    from worker.dispatch import Dispatcher
    from worker.kinds import all_kinds
    from worker.maintenance import Maintenance
    from worker.notifications import Notifications
    from worker.policy import Backoff

    pipeline.reconfigure(video_deadline_seconds=0.5)
    jobs = pipeline.submit(41, count=3, credits=3, title=TITLE)
    time.sleep(0.8)
    d = Dispatcher(make_broker(pipeline.settings))
    notes = Notifications(pipeline.db, None, d, Backoff(0.1, 0.2))
    m = Maintenance(pipeline.settings, pipeline.db, d, {k.name: k for k in all_kinds()}, notes)
    assert m.elect() and m.tick().expired == 3
    m.stop()
    d.close()
    assert len(_summaries(pipeline, jobs)) == 1
    pipeline.start_worker()  # its maintenance loop sends the summary queued in a transaction
    pipeline.wait(jobs)
    texts = _texts(pipeline, 41)
    assert len(texts) == 4
    assert sum(t.startswith("Sorry, your video") for t in texts) == 3
    assert texts[-1] == (
        f"0 of 3 videos of “{TITLE}” are ready, 3 failed and 3 credits were refunded."
    )
    assert _available(pipeline, 41) == 3


def test_two_jobs_ending_at_once_queue_exactly_one_summary(pipeline: Pipeline) -> None:
    """The race the lock of the request's row closes: the last two jobs of a request end at
    the same moment on two connections; exactly one of them queues the summary, every time.

    Half the rounds end each job in one autocommit statement (as a step does; the one that
    queued the summary wakes it). The other half end them inside transactions that wait for
    each other before committing (as the maintenance loop and a cancel do): without the lock
    both would see the other job still active and neither would queue the summary."""
    rounds = 30
    pipeline.client.grant(36, 3 * rounds)
    # Paid requests, and free ones: a paid job's refund also locks the user's account row,
    # which serialises the two ends by itself; a free job's end takes no lock but the request's.
    requests = [
        pipeline.client.submit_video(
            user_id=36, count=3, product={"title": TITLE, "image_url": "https://x.test/p.jpg"}
        ).job_ids
        if n % 4 < 2
        else _free_request(pipeline, 36, 3)
        for n in range(rounds)
    ]
    err = ProviderError(ErrorClass.USER_ERROR, "refused", provider="test", user_message="No.")
    endings = [
        lifecycle.Ending(JobStatus.CANCELLED, event="cancelled", error="by the test"),
        lifecycle.failure(err, price=1, notify_text="Sorry."),
    ]
    for n, (first, *last_two) in enumerate(requests):
        assert lifecycle_end(pipeline, first, endings[0])
        race = _Race(held=n % 2 == 1)
        threads = [
            threading.Thread(target=race.end, args=(pipeline, job, ending))
            for job, ending in zip(last_two, endings, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert race.ended == [True, True]
        rows = _summaries(pipeline, [first])
        assert len(rows) == 1, f"request of jobs {[first, *last_two]}: {len(rows)} summaries"
        if not race.held:
            assert race.woken == [(int(rows[0]["job_id"]), "summary")]
    assert _available(pipeline, 36) == 3 * rounds
    assert pipeline.ledger_ok()


def _free_request(p: Pipeline, user_id: int, count: int) -> list[int]:
    """A request of ``count`` free video jobs (no hold), written as ``submit`` writes it."""
    payload = {"title": TITLE, "image_url": "https://x.test/p.jpg"}
    answer = p.db.fetchone(
        SUBMIT,
        {
            "request_id": uuid.uuid4(),
            "user_id": user_id,
            "chat_id": user_id,
            "kind": "video",
            "step": "prompt",
            "payload": Jsonb(payload),
            "price": 0,
            "count": count,
            "deadline_seconds": 600,
            "idempotency_key": None,
            "fingerprint": "free",
            "cloned_from": None,
            "detail": "free jobs of the race test",
        },
    )
    assert answer is not None
    return [int(j) for j in answer["answer"]["job_ids"]]


class _Race:
    """Two ends started together (a barrier), in autocommit or in held transactions."""

    def __init__(self, *, held: bool) -> None:
        self.held = held
        self.start = threading.Barrier(2)
        self.before_commit = threading.Barrier(2, timeout=0.3)
        self.woken: list[tuple[int, str]] = []
        self.ended: list[bool] = []

    def end(self, p: Pipeline, job_id: int, ending: lifecycle.Ending) -> None:
        with p.db.connection() as conn:
            conn.execute("SELECT 1")  # connected before the barrier: the two ends start together
            self.start.wait()
            if not self.held:
                self.ended.append(lifecycle.end(conn, job_id, ending, wake=self._wake))
                return
            with conn.transaction():
                self.ended.append(lifecycle.end(conn, job_id, ending, wake=self._wake))
                # With the lock, the other end waits for ours: it never comes, and we commit.
                with contextlib.suppress(threading.BrokenBarrierError):
                    self.before_commit.wait()

    def _wake(self, job_id: int, kind: str) -> None:
        self.woken.append((job_id, kind))


def lifecycle_end(p: Pipeline, job_id: int, ending: lifecycle.Ending) -> bool:
    with p.db.connection() as conn:
        return lifecycle.end(conn, job_id, ending)


def test_still_working_is_sent_once_per_request(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"render_seconds": 4.0}})
    pipeline.reconfigure(progress_after_seconds=0.5)
    pipeline.start_worker()
    jobs = pipeline.submit(37, count=3, credits=3, title=TITLE)
    pipeline.wait(jobs, timeout=90)
    texts = _texts(pipeline, 37)
    progress = [t for t in texts if t.startswith("Still working")]
    assert progress == [f"Still working on your video of “{TITLE}”. " + _LONGER]
    assert _request_messages(pipeline, jobs, "progress") == 1
    assert texts[-1] == f"3 of 3 videos of “{TITLE}” are ready."


_LONGER = "Longer videos can take a few minutes."


def test_a_russian_user_gets_the_russian_summary(pipeline: Pipeline) -> None:
    pipeline.reconfigure(video_menu_button=True)
    pipeline.start_worker()
    jobs = pipeline.submit(38, count=3, credits=3, title="Кружка", language="ru")
    pipeline.wait(jobs)
    summary = pipeline.messages(38)[-1]
    assert summary["text"] == "Готово 3 из 3 видео «Кружка»."
    assert _buttons(summary) == [
        ("Сделать ещё с этим товаром", f"again:{max(jobs)}"),
        ("В меню", "menu"),
    ]


def test_user_text_is_shown_as_typed(pipeline: Pipeline) -> None:
    """No parse mode is sent, so the title goes out as the user typed it: escaping it (as
    HTML would need) would show "&lt;b&gt;&amp;" instead."""
    pipeline.start_worker()
    title = "<b>& *mug*_"
    jobs = pipeline.submit(39, count=3, credits=3, title=title)
    refused = pipeline.submit(42, count=1, credits=1, title=f"FORBIDDEN {title}")  # the failure
    pipeline.wait(jobs + refused)
    messages = pipeline.messages(39)
    assert [m["caption"] for m in messages[:3]] == [f"Your video of “{title}” is ready."] * 3
    assert messages[-1]["text"] == f"3 of 3 videos of “{title}” are ready."
    (failure,) = pipeline.messages(42)
    assert failure["text"].startswith(f"Sorry, your video of “FORBIDDEN {title}” could not be")
    assert all("parse_mode" not in m["params"] for m in [*messages, failure])


def test_worker_submit_takes_a_language(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.cli.main import cli

    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    pipeline.client.grant(40, 3)
    run: Callable[..., Any] = CliRunner().invoke
    args = ["submit", "--user", "40", "--image-url", "https://x.test/p.jpg", "--title", "Кружка"]
    result = run(cli, [*args, "--count", "3", "--language", "ru", "--json"])
    assert result.exit_code == 0, result.output
    bad = run(cli, [*args, "--language", "not a language"])
    assert bad.exit_code != 0 and "language" in bad.stderr
    rows = pipeline.db.fetchall("SELECT payload FROM jobs WHERE user_id = 40")
    assert [r["payload"]["language"] for r in rows] == ["ru"] * 3
    assert _available(pipeline, 40) == 0


@pytest.mark.parametrize(
    ("language", "refunded", "expected"),
    [
        ("ru", 3, "Готово 2 из 5 видео «Кружка», 3 не получилось сделать, и мы вернули 3 кредита."),
        (
            "ru",
            5,
            "Готово 2 из 5 видео «Кружка», 3 не получилось сделать, и мы вернули 5 кредитов.",
        ),
        (
            "ru",
            21,
            "Готово 2 из 5 видео «Кружка», 3 не получилось сделать, и мы вернули 21 кредит.",
        ),
        ("uk", 3, "Готово 2 з 5 відео «Кружка», 3 не вдалося зробити, і ми повернули 3 кредити."),
        (
            "uk",
            12,
            "Готово 2 з 5 відео «Кружка», 3 не вдалося зробити, і ми повернули 12 кредитів.",
        ),
        ("en", 1, "2 of 5 videos of “Кружка” are ready, 3 failed and 1 credit was refunded."),
        ("de", 6, "2 of 5 videos of “Кружка” are ready, 3 failed and 6 credits were refunded."),
    ],
)
def test_the_summary_counts_credits_in_the_users_language(
    language: str, refunded: int, expected: str
) -> None:
    """The refund is the ledger's (a tier's price may be several credits a video), in the plural
    form the language needs (Russian and Ukrainian: one, few, many)."""
    from jobs.video.summary import summary
    from worker.kinds import RequestTally

    tally = RequestTally(
        total=5, succeeded=2, failed=3, cancelled=0, refunded=refunded, button_job=7
    )
    message = summary(None, {"title": "Кружка", "language": language}, tally)
    assert message.text == expected
    assert message.reply_markup is not None
    assert message.reply_markup["inline_keyboard"][0][0]["callback_data"] == "again:7"
