"""Submitting a report: the CSV is copied into storage by content, refusals write nothing, the
price is held like a video's, replays and clones reuse the stored copy."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import jobs.report
import jobs.report.upload
from jobs.report.settings import report_settings
from worker.client import AsyncClient, Client, InsufficientCredits, InvalidRequest
from worker.config import Settings, load_settings
from worker.db import Database

ROWS = "Date,Title,Content Type,Earnings\r\n2024-03-01,Cat,photo,1.50\r\n"


def _counts(db: Database) -> tuple[int, ...]:
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM jobs) j, (SELECT count(*) FROM requests) r,"
        " (SELECT count(*) FROM transfers) t"
    )
    assert row is not None
    return tuple(row.values())


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "My sales.csv"
    path.parent.mkdir()
    path.write_text(ROWS)
    return path


def uploads(settings: Settings) -> list[Path]:
    root = Path(settings.storage_dir) / "report" / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_submit_stores_the_csv_and_the_payload(
    client: Client, settings: Settings, csv_file: Path
) -> None:
    res = client.submit_report(7, None, csv_file, period="90d", content_type=" photo ")
    assert (res.credits_held, res.available) == (0, 0)
    job = client.job(res.job_ids[0])
    digest = hashlib.sha256(csv_file.read_bytes()).hexdigest()
    assert job["payload"] == {
        "csv": f"report/uploads/{digest[:2]}/{digest}.csv",
        "file_name": "My sales.csv",
        "size": len(ROWS),
        "sha256": digest,
        "period": "90d",
        "content_type": "photo",
    }
    assert (job["kind"], job["step"], job["chat_id"], job["credits"]) == (
        "report",
        "analyse",
        7,
        None,
    )
    (stored,) = uploads(settings)
    assert stored == Path(settings.storage_dir) / job["payload"]["csv"]
    assert stored.read_bytes() == csv_file.read_bytes()


def test_priced_report_holds_credits(settings: Settings, db: Database, csv_file: Path) -> None:
    priced = Client(load_settings(**_same(settings), report_price_credits=2), db=db)
    priced.grant(8, 3)
    res = priced.submit_report(8, 80, str(csv_file))
    assert (res.credits_held, res.available) == (2, 1)
    assert priced.job(res.job_ids[0])["credits"] == "held"
    before = _counts(db)
    with pytest.raises(InsufficientCredits) as info:
        priced.submit_report(8, 80, csv_file)
    assert (info.value.needed, info.value.available) == (2, 1)
    assert _counts(db) == before


def _same(settings: Settings) -> dict[str, Any]:
    return {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "redis_namespace": settings.redis_namespace,
        "storage_dir": str(settings.storage_dir),
        "_env_file": None,
    }


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"csv_path": "missing.csv"}, "csv", "does not exist"),
        ({"csv_path": "."}, "csv", "is not a regular file"),
        ({"csv_path": "empty.csv"}, "csv", "is empty"),
        ({"csv_path": "big.csv"}, "csv", "above the 0.0 MB limit"),
        ({"csv_path": ""}, "csv", "is required"),
        ({"period": "1y"}, "period", "must be one of 7d, 30d, 90d, all"),
        ({"period": 30}, "period", "must be one of"),
        ({"content_type": "x" * 101}, "content_type", "at most 100 characters"),
        ({"content_type": "photo\x00"}, "content_type", "control characters"),
        ({"content_type": 5}, "content_type", "must be a string"),
    ],
)
def test_refusals_name_the_field_and_write_nothing(
    client: Client,
    db: Database,
    settings: Settings,
    tmp_path: Path,
    csv_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "big.csv").write_text(ROWS)
    monkeypatch.chdir(tmp_path)
    if change.get("csv_path") == "big.csv":
        monkeypatch.setattr(report_settings(settings), "report_max_bytes", 10)
    args: dict[str, Any] = {"csv_path": csv_file, **change}
    before = _counts(db)
    with pytest.raises(InvalidRequest) as info:
        client.submit_report(9, None, **args)
    assert info.value.field == field
    assert reason in info.value.reason
    assert _counts(db) == before
    assert uploads(settings) == []


def test_replay_returns_the_first_result_and_copies_once(
    client: Client, settings: Settings, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = client.submit_report(10, None, csv_file, idempotency_key="tg-1")
    (stored,) = uploads(settings)
    copies: list[Path] = []
    real_copy = jobs.report.upload._copy

    def spy(path: Path, dest: Path, digest: str, max_bytes: int) -> None:
        copies.append(dest)
        real_copy(path, dest, digest, max_bytes)

    monkeypatch.setattr(jobs.report.upload, "_copy", spy)
    again = client.submit_report(10, None, csv_file, idempotency_key="tg-1")
    assert again.replayed and again.job_ids == first.job_ids
    assert copies == [] and uploads(settings) == [stored]
    # the same content under another name is the same upload
    other = csv_file.with_name("copy.csv")
    other.write_bytes(csv_file.read_bytes())
    client.submit_report(10, None, other)
    assert copies == [] and uploads(settings) == [stored]


def test_same_key_with_another_file_is_refused(
    client: Client, csv_file: Path, tmp_path: Path
) -> None:
    client.submit_report(11, None, csv_file, idempotency_key="tg-2")
    other = tmp_path / "other.csv"
    other.write_text(ROWS + "2024-03-02,Dog,photo,2.00\r\n")
    with pytest.raises(InvalidRequest) as info:
        client.submit_report(11, None, other, idempotency_key="tg-2")
    assert info.value.field == "idempotency_key"


def test_clone_reuses_the_stored_upload(client: Client, settings: Settings, csv_file: Path) -> None:
    first = client.submit_report(12, None, csv_file, period="7d")
    os.remove(csv_file)  # the bot's temp file is gone; the stored copy is what counts
    clone = client.clone(first.job_ids[0])
    assert client.job(clone.job_ids[0])["payload"] == client.job(first.job_ids[0])["payload"]
    assert len(uploads(settings)) == 1
    uploads(settings)[0].unlink()
    with pytest.raises(InvalidRequest, match="stored upload is gone"):
        client.clone(first.job_ids[0])


def test_async_twin(settings: Settings, db: Database, csv_file: Path) -> None:
    async def go() -> list[int]:
        aclient = AsyncClient(Client(settings, db=db))
        res = await aclient.submit_report(13, 130, csv_file, "all", None, "tg-3")
        again = await aclient.submit_report(13, 130, csv_file, period="all", idempotency_key="tg-3")
        assert again.replayed and again.job_ids == res.job_ids
        return res.job_ids

    (job_id,) = asyncio.run(go())
    assert Client(settings, db=db).job(job_id)["payload"]["period"] == "all"
