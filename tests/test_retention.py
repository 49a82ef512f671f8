"""Storage retention: the files of jobs finished long ago go, each with an event; nothing else
does. Real PostgreSQL, real files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from tests.conftest import PRODUCT
from worker import lifecycle, retention
from worker.cli.main import cli
from worker.client import Client
from worker.config import Settings
from worker.db import Database
from worker.retention import RetentionLoop
from worker.storage import Storage

DAY = 86400.0


def _job(client: Client, user: int = 21) -> int:
    client.grant(user, 1)
    (job,) = client.submit_video(user_id=user, product=PRODUCT).job_ids
    return job


def _finish(db: Database, job: int, days_ago: float, result: Path, step: str = "photo") -> None:
    """The job succeeds (its hold captured, as a step would), then is aged ``days_ago``."""
    with db.transaction() as conn:
        c = lifecycle.claim(conn, job, step, "test", 30)
        assert c is not None and lifecycle.succeed(conn, c, result=str(result))
        conn.execute(
            "UPDATE jobs SET finished_at = now() - make_interval(days => %s) WHERE id = %s",
            (days_ago, job),
        )


def _file(path: Path, days_old: float, size: int = 4096) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    then = time.time() - days_old * DAY
    os.utime(path, (then, then))
    return path


@pytest.fixture
def storage(settings: Settings) -> Storage:
    return Storage(settings.storage_dir)


def test_only_files_of_jobs_finished_before_the_retention_go(
    client: Client, db: Database, storage: Storage
) -> None:
    old, recent, running = _job(client), _job(client), _job(client)
    files = {j: _file(storage.path_for("video", j, ".mp4"), days_old=20) for j in (old, recent)}
    files[running] = _file(storage.path_for("video", running, ".mp4"), days_old=20)
    _finish(db, old, days_ago=15, result=files[old])
    _finish(db, recent, days_ago=1, result=files[recent])
    unknown = _file(storage.path_for("video", 987654, ".mp4"), days_old=20)
    stale_part = _file(storage.path_for("video", old, ".mp4").with_name(".9.mp4.77.part"), 2)
    fresh_part = _file(storage.path_for("video", running, ".mp4").with_name(".8.mp4.77.part"), 0)

    dry = retention.prune(storage.root, db, 14 * DAY, dry_run=True)
    assert (dry.removed, dry.kept, dry.partials_removed) == (1, 3, 1)
    assert files[old].exists() and stale_part.exists()
    assert "file removed" not in [e["event"] for e in client.job(old)["events"]]

    removed_before = REGISTRY.get_sample_value(
        "worker_storage_removed_files_total", {"what": "job"}
    )
    report = retention.prune(storage.root, db, 14 * DAY)
    assert (
        REGISTRY.get_sample_value("worker_storage_removed_files_total", {"what": "job"})
        == (removed_before or 0) + 1
    )
    assert report.as_dict() == {
        "removed": 1,
        "removed_bytes": 4096,
        "kept": 3,  # the recent job's, the running job's, and a job this database never had
        "partials_removed": 1,
        "shared_removed": 0,
        "skipped": False,
        "dry_run": False,
    }
    assert not files[old].exists() and not stale_part.exists()
    assert files[recent].exists() and files[running].exists()
    assert unknown.exists() and fresh_part.exists()
    (event,) = [e for e in client.job(old)["events"] if e["event"] == "file removed"]
    assert event["detail"].startswith(f"{old}.mp4 (4,096 bytes) removed 15 days after")
    # The job and its money are untouched; a second pass finds nothing more.
    assert (client.job(old)["status"], client.job(old)["credits"]) == ("succeeded", "captured")
    assert retention.prune(storage.root, db, 14 * DAY).removed == 0


def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def test_report_folders_and_the_uploads_no_job_needs_go(
    client: Client, db: Database, settings: Settings, storage: Storage, tmp_path: Path
) -> None:
    def report(user: int, rows: str) -> tuple[int, Path]:
        csv = tmp_path / f"sales-{user}.csv"
        csv.write_text(f"date,title,earnings\n{rows}\n")
        (job,) = client.submit_report(user, None, csv).job_ids
        return job, settings.storage_dir / client.job(job)["payload"]["csv"]

    done, done_upload = report(31, "2026-01-01,a,1")
    waiting, waiting_upload = report(32, "2026-01-02,b,2")
    folder = storage.path_for("report", done, "")
    _file(folder / "sales-report.html", days_old=30)
    _age(folder, 30)
    _finish(db, done, days_ago=30, result=folder / "sales-report.html", step="analyse")
    for upload in (done_upload, waiting_upload):
        _age(upload, 30)
    fresh = settings.storage_dir / "report/uploads/ff" / ("f" * 64 + ".csv")
    _file(fresh, days_old=0, size=5)
    # Not where path_for would put that job: never taken for it.
    misplaced = _file(settings.storage_dir / "video" / "005" / f"{done}.mp4", days_old=30)

    report_ = retention.prune(storage.root, db, 14 * DAY)
    assert (report_.removed, report_.shared_removed) == (1, 1)
    assert not folder.exists() and not done_upload.exists()
    assert waiting_upload.exists() and fresh.exists() and misplaced.exists()
    assert "file removed" in [e["event"] for e in client.job(done)["events"]]
    assert "file removed" not in [e["event"] for e in client.job(waiting)["events"]]

    # The same file submitted again is stored again; reusing a stored upload marks it as used.
    _, again_upload = report(31, "2026-01-01,a,1")
    assert again_upload == done_upload and again_upload.exists()
    _, reused = report(33, "2026-01-02,b,2")
    assert reused == waiting_upload and reused.stat().st_mtime > time.time() - 60


def test_one_process_per_host_prunes_at_a_time(
    client: Client, db: Database, storage: Storage
) -> None:
    job = _job(client)
    path = _file(storage.path_for("video", job, ".mp4"), days_old=30)
    _finish(db, job, days_ago=30, result=path)
    with retention._host_lock(storage.root) as ours:
        assert ours
        assert retention.prune(storage.root, db, 14 * DAY).skipped
    assert path.exists()
    assert RetentionLoop(storage.root, db, 14 * DAY).run_once() is not None
    assert not path.exists()


def test_a_missing_storage_directory_and_a_zero_retention(db: Database, tmp_path: Path) -> None:
    assert retention.prune(tmp_path / "nowhere", db, DAY).removed == 0
    with pytest.raises(ValueError):
        retention.prune(tmp_path, db, 0)
    loop = RetentionLoop(tmp_path, db, 0)  # STORAGE_RETENTION_DAYS=0: keep every file
    loop.start()
    assert loop._thread is None


def test_cli_prunes_now_and_refuses_a_zero_age(
    client: Client, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("STORAGE_DIR", str(settings.storage_dir))
    monkeypatch.chdir(settings.storage_dir)
    storage = Storage(settings.storage_dir)
    job = _job(client)
    path = _file(storage.path_for("report", job, ".csv"), days_old=3, size=10)
    _finish(db, job, days_ago=3, result=path)

    out = CliRunner().invoke(cli, ["storage", "prune", "--json"])  # default 14 days: kept
    assert out.exit_code == 0 and json.loads(out.stdout)["removed"] == 0 and path.exists()
    out = CliRunner().invoke(cli, ["storage", "prune", "--older-than-days", "2", "--dry-run"])
    assert out.exit_code == 0 and "would remove" in out.stdout and path.exists()
    out = CliRunner().invoke(cli, ["storage", "prune", "--older-than-days", "2", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["removed"] == 1 and not path.exists()
    out = CliRunner().invoke(cli, ["storage", "prune", "--older-than-days", "0"])
    assert out.exit_code == 2
