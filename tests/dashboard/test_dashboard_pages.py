"""What the pages show, against the real database: the overview agrees with the ledger, the
jobs list pages by keyset with its filters in the URL, bulk actions state and do what they say,
a user's credits add up, and live pages are told about changes by one shared poller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.dashboard.conftest import Browserless, RunningDashboard
from worker import stats
from worker.client import Client
from worker.dashboard import queries as dq
from worker.db import Database

Make = Callable[..., Browserless]
PRODUCT = {"title": "Mug", "image_url": "https://example.test/m.jpg"}


def _jobs(client: Client, user_id: int, count: int = 5, credits: int = 10) -> list[int]:
    client.grant(user_id, credits)
    return client.submit_video(user_id=user_id, product=PRODUCT, count=count).job_ids


def test_overview_agrees_with_the_ledger(client: Client, db: Database) -> None:
    a = _jobs(client, 1)
    b = _jobs(client, 2, count=3)
    for job in (a[0], a[1], b[2]):
        client.cancel(job)
    with db.transaction() as conn:
        data = dq.overview(conn)
        ledger_view = stats.window(conn, 86_400)
    day = data["windows"]["day"]
    assert (
        day["by_status"]
        == ledger_view["by_status"]
        == {"queued": 5, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 3}
    )
    assert day["credits"] == ledger_view["credits"]
    assert data["active"] == {"queued": 5, "running": 0}
    assert data["ledger"]["held"] == 5
    bars = data["charts"]["hour"]["bars"]
    assert len(bars) == 30 and sum(x["cancelled"] for x in bars) == 3


def test_jobs_list_pages_by_keyset_with_every_filter_in_the_link(
    browserless: Make, client: Client, db: Database
) -> None:
    ids = [j for _ in range(11) for j in _jobs(client, 3, credits=5)]
    with db.transaction() as conn:
        seen, before = [], None
        while True:
            page = dq.job_page(conn, dq.JobFilter(user_id=3), before, limit=7)
            seen += [r["id"] for r in page.jobs]
            if page.next_before is None:
                break
            before = page.next_before
    assert seen == sorted(ids, reverse=True)

    viewer = browserless("vic")
    first = viewer.http.get("/jobs?user=3")
    assert first.text.count('<a href="/users/3">') == 50
    assert 'rel="next" href="/jobs?user=3&amp;before=' in first.text
    older = viewer.http.get(f"/jobs?user=3&before={sorted(ids)[5]}")
    assert older.text.count('<a href="/users/3">') == 5

    other = _jobs(client, 4, count=1)[0]
    client.db.fetchone("UPDATE jobs SET chat_id = 777 WHERE id = %s RETURNING id", (other,))
    assert f'href="/jobs/{other}"' in viewer.http.get("/jobs?chat=777").text
    assert f'href="/jobs/{ids[0]}"' not in viewer.http.get("/jobs?chat=777").text

    now = datetime.now(UTC)
    window = f"from={(now - timedelta(hours=1)):%Y-%m-%dT%H:%M}&to={(now + timedelta(hours=1)):%Y-%m-%dT%H:%M}"
    assert f'href="/jobs/{other}"' in viewer.http.get(f"/jobs?{window}").text
    past = f"from={(now - timedelta(days=3)):%Y-%m-%dT%H:%M}&to={(now - timedelta(days=2)):%Y-%m-%dT%H:%M}"
    assert "No job matches." in viewer.http.get(f"/jobs?{past}").text

    bad = viewer.http.get("/jobs?status=lost")
    assert bad.status_code == 400 and "status must be one of" in bad.text
    assert viewer.http.get("/jobs?user=abc").status_code == 400
    assert viewer.http.get("/jobs?from=yesterday").status_code == 400


def test_bulk_cancel_states_count_and_credits_then_does_exactly_that(
    browserless: Make, client: Client
) -> None:
    mine = _jobs(client, 5)
    theirs = _jobs(client, 6, count=3)
    admin = browserless("ada")
    confirm = admin.http.get("/jobs/bulk?user=5&action=cancel")
    assert confirm.status_code == 200
    assert "Cancel <b>5</b> queued job(s) and refund <b>5</b> credit(s)" in confirm.text
    token = admin.csrf("/jobs")
    form = {"csrf": token, "action": "cancel", "user": "5", "count": "5", "max_id": str(max(mine))}
    # A confirmation of a different set (another job arrived since) does nothing.
    stale = admin.post("/jobs/bulk", {**form, "count": "4"})
    assert stale.status_code == 303
    assert all(client.job(j)["status"] == "queued" for j in mine)
    assert "nothing done" in admin.http.get("/jobs").text

    done = admin.post("/jobs/bulk", form)
    assert done.status_code == 303 and done.headers["location"] == "/jobs?user=5"
    assert "bulk cancel: 5 of 5 job(s) done" in admin.http.get("/jobs?user=5").text
    for job in mine:
        view = client.job(job)
        assert (view["status"], view["credits"]) == ("cancelled", "refunded")
        assert "ada" in view["events"][-1]["detail"]
    assert all(client.job(j)["status"] == "queued" for j in theirs)
    assert client.balance(5).available == 10

    retry = admin.http.get("/jobs/bulk?user=5&action=retry")
    assert "Retry <b>5</b> job(s) as new jobs, holding <b>5</b> credit(s)" in retry.text
    viewer = browserless("vic")
    assert viewer.http.get("/jobs/bulk?user=5&action=retry").status_code == 403
    assert "/jobs/bulk" not in viewer.http.get("/jobs?user=5").text


def test_user_page_says_where_the_credits_went(browserless: Make, client: Client) -> None:
    jobs = _jobs(client, 8, count=3, credits=7)
    client.cancel(jobs[0])
    page = browserless("vic").http.get("/users/8").text
    assert "<dt>available</dt><dd>5</dd>" in page  # 7 granted, 3 held, 1 refunded
    assert "<dt>held</dt><dd>2</dd>" in page
    assert page.count("refunded (hold released)") == 1 and page.count(">held<") >= 3
    assert "+7" in page and "granted" in page


def test_live_pages_share_one_poller_and_hear_of_changes(
    dashboard: RunningDashboard, browserless: Make, client: Client
) -> None:
    job = _jobs(client, 9, count=1)[0]
    viewer = browserless("vic")
    cookies = viewer.http.cookies
    heard: list[list[str]] = [[], []]

    def listen(into: list[str]) -> None:
        with httpx.stream(
            "GET", f"{dashboard.url}/live/jobs/{job}", cookies=cookies, timeout=20
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    into.append(line[6:])
                    if len(into) == 2:
                        return

    threads = [threading.Thread(target=listen, args=(h,)) for h in heard]
    for t in threads:
        t.start()
    import time

    deadline = time.monotonic() + 10
    while not all(heard) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(heard), "no first event"
    assert list(dashboard.dashboard.live._topics) == [f"job:{job}"]  # one poller, two viewers
    client.cancel(job)
    for t in threads:
        t.join(20)
    assert heard[0][0].startswith("queued:") and heard[0][1].startswith("cancelled:")
    assert heard[1][-1] == heard[0][1]


def test_the_stored_file_is_served_only_from_storage(
    browserless: Make, client: Client, dashboard: RunningDashboard
) -> None:
    inside, outside = _jobs(client, 10, count=3)[:2]
    root = Path(dashboard.dashboard.settings.storage_dir)
    (root / "video").mkdir(parents=True, exist_ok=True)
    (root / "video" / f"{inside}.mp4").write_bytes(b"not really a video")
    client.db.fetchone(
        "UPDATE jobs SET result = %s WHERE id = %s RETURNING id",
        (str(root / "video" / f"{inside}.mp4"), inside),
    )
    client.db.fetchone(
        "UPDATE jobs SET result = '/etc/passwd' WHERE id = %s RETURNING id", (outside,)
    )
    viewer = browserless("vic")
    assert f'href="/jobs/{inside}/file"' in viewer.http.get(f"/jobs/{inside}").text
    assert viewer.http.get(f"/jobs/{inside}/file").content == b"not really a video"
    assert "/file" not in viewer.http.get(f"/jobs/{outside}").text
    assert viewer.http.get(f"/jobs/{outside}/file").status_code == 404
    assert viewer.http.get("/jobs/999999").status_code == 404
