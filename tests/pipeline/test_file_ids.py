"""Telegram keeps the files: the file_id of each delivered video and report is stored with the
job, shown by `worker jobs show`, and a send by it needs no STORAGE_DIR (simulator, PostgreSQL,
Redis, Dramatiq; the simulator's Telegram accepts only file_ids it issued, as Telegram does)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.pipeline.conftest import BOT_TOKEN, Pipeline
from tests.report.report_csv import csv_text
from worker.cli.main import cli
from worker.errors import ProviderError
from worker.telegram import Media, TelegramNotifier

VIDEO = Media("sendVideo", "video", "video/mp4")


def _show(pipeline: Pipeline, job_id: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    s = pipeline.settings
    monkeypatch.setenv("DATABASE_URL", s.database_url)
    monkeypatch.setenv("REDIS_URL", s.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", s.redis_namespace)
    monkeypatch.chdir(Path(s.storage_dir).parent)  # no stray .env
    text = CliRunner().invoke(cli, ["jobs", "show", str(job_id)])
    as_json = CliRunner().invoke(cli, ["jobs", "show", str(job_id), "--json"])
    assert text.exit_code == 0 and as_json.exit_code == 0, (text.output, as_json.output)
    return text.stdout, as_json.stdout


def test_video_file_id_is_stored_shown_and_enough_without_storage(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.start_worker()
    (job_id,) = pipeline.submit(41, credits=1)
    (job,) = pipeline.wait([job_id])
    (sent,) = pipeline.messages(41)
    assert sent["method"] == "sendVideo" and sent["file_id"].startswith("BAAC")
    assert job["telegram_file_id"] == sent["file_id"]
    assert f"file_id {sent['file_id']}" in pipeline.client.job(job_id)["events"][-1]["detail"]
    text, as_json = _show(pipeline, job_id, monkeypatch)
    assert sent["file_id"] in text
    assert json.loads(as_json)["telegram_file_id"] == sent["file_id"]

    # STORAGE_DIR is lost: Telegram still sends the same file by its file_id, with no upload.
    storage = Path(pipeline.settings.storage_dir)
    shutil.rmtree(storage)
    with TelegramNotifier(pipeline.sim.telegram_url, BOT_TOKEN, timeout=5) as tg:
        again = tg.deliver_file(41, VIDEO, file_id=job["telegram_file_id"], caption="again")
        assert again.file_id == sent["file_id"]
        # A file_id Telegram never issued is refused (what a forged or stale one gets).
        with pytest.raises(ProviderError) as err:
            tg.deliver_file(41, VIDEO, file_id="BAACnot-a-real-file-id", caption="x")
        assert err.value.status == 400 and err.value.permanent_for_notification
    resent = pipeline.messages(41)[-1]
    assert (resent["file_ref"], resent["file_size"]) == (sent["file_id"], None)  # no upload
    assert resent["file_sha256"] == sent["file_sha256"]  # the very same video
    assert not storage.exists()


def test_a_deliver_run_again_sends_by_file_id_without_storage(pipeline: Pipeline) -> None:
    """The deliver step of a job that holds a file_id (a send that reached Telegram, run again)
    sends by it: no download from KIE, no upload, no local file. The run again is made here by
    putting the job back at its deliver step, as no public operation does yet."""
    pipeline.start_worker()
    (job_id,) = pipeline.submit(42, credits=1, language="uk")
    (job,) = pipeline.wait([job_id])
    file_id = job["telegram_file_id"]
    assert file_id
    shutil.rmtree(pipeline.settings.storage_dir)
    downloads = _downloads(pipeline)
    assert downloads == 1
    with pipeline.db.transaction() as conn:
        conn.execute("DELETE FROM notifications WHERE job_id = %s AND kind = 'result'", (job_id,))
        conn.execute(
            "UPDATE jobs SET status = 'queued', step = 'deliver', next_run_at = now(),"
            " finished_at = NULL WHERE id = %s",
            (job_id,),
        )
    # No wake-up is sent: the maintenance loop finds the runnable job and dispatches it.
    pipeline.wait([job_id], timeout=60)
    first, second = pipeline.messages(42)
    assert second["method"] == "sendVideo" and second["file_ref"] == file_id
    assert second["file_size"] is None and second["file_sha256"] == first["file_sha256"]
    assert second["caption"] == first["caption"] == "Ваше відео «Red ceramic mug» готове."
    assert second["reply_markup"] == first["reply_markup"]
    assert _downloads(pipeline) == downloads  # nothing fetched from KIE again
    assert "no upload" in pipeline.client.job(job_id)["events"][-1]["detail"]


def _downloads(pipeline: Pipeline) -> int:
    return sum(int(t["downloads"]) for t in pipeline.sim.tasks())


def test_report_file_id_is_stored(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start_worker()
    csv = tmp_path / "sales.csv"
    csv.write_text(csv_text([("2024-03-01", "Mug", "video", "10.00")]), encoding="utf-8")
    res = pipeline.client.submit_report(43, 43, csv, period="all", language="ru")
    (job,) = pipeline.wait(res.job_ids)
    (sent,) = pipeline.messages(43)
    assert sent["method"] == "sendDocument"
    assert sent["caption"] == "1 продажа, $10.00 · все продажи, 01.03.2024"  # the user's language
    assert job["status"] == "succeeded" and job["telegram_file_id"] == sent["file_id"]
