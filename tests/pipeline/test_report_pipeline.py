"""The report job end to end on the real pipeline: PostgreSQL, Redis, Dramatiq workers and the
simulated Telegram. A priced report is captured on success and refunded on a broken file; the
user gets exactly one document (or one failure message); `worker report --json` works."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.pipeline.conftest import Pipeline
from tests.report.report_csv import csv_text
from worker.cli.main import cli

TYPES = ("photo", "video", "vector")


def export(path: Path, rows: int = 1500, seed: int = 3) -> tuple[Path, int, Decimal]:
    """A semicolon-separated export with decimal commas; returns (path, rows, total)."""
    rng = random.Random(seed)
    total = Decimal(0)
    lines = []
    for _ in range(rows):
        cents = rng.randrange(25, 2000)
        total += Decimal(cents) / 100
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(60))
        amount = f"{cents // 100},{cents % 100:02d}"
        lines.append(
            (day.strftime("%d.%m.%Y"), f"Asset {rng.randrange(50)}", rng.choice(TYPES), amount)
        )
    path.write_text(csv_text(lines, header=("Дата", "Title", "Type", "Earnings"), delimiter=";"))
    return path, rows, total


def test_priced_report_is_captured_and_delivered_once(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.reconfigure(report_price_credits=2)
    pipeline.start_worker()
    path, rows, total = export(tmp_path / "sales.csv")
    pipeline.client.grant(21, 5)
    res = pipeline.client.submit_report(21, 210, path, period="all")
    assert (res.credits_held, res.available) == (2, 3)
    (job,) = pipeline.wait(res.job_ids)
    assert (job["status"], job["credits"], job["kind"]) == ("succeeded", "captured", "report")
    assert pipeline.events(job["id"]) == ["submitted", "analysed", "succeeded"]
    assert pipeline.client.balance(21).as_dict() == {
        "user_id": 21,
        "available": 3,
        "held": 0,
        "spent": 2,
        "refunded": 0,
    }
    result = Path(job["result"])
    assert result.name == "sales-report.html"
    html = result.read_text()
    assert "<svg" in html and "Top 10 assets" in html
    (msg,) = pipeline.messages(210)
    money = f"${total:,.2f}"
    assert msg["method"] == "sendDocument"
    assert msg["caption"] == f"{rows:,} sales, {money} · all sales, 1 Jan 2024 – 29 Feb 2024"
    assert msg["file_name"] == "sales-report.html"
    assert msg["file_size"] == result.stat().st_size
    assert msg["file_sha256"] == hashlib.sha256(result.read_bytes()).hexdigest()
    assert pipeline.ledger_ok()


BROKEN = "Date,Title,Type,Earnings\r\n2024-03-01,Cat,photo,1.50\r\n2024-03-02,Dog,photo,abc\r\n"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (BROKEN, "line 3, column Earnings: 'abc' is not a number"),
        ("Date,Title,Type,Earnings\r\n", "the file has a header but no sales rows"),
    ],  # a file without usable columns is refused at submit (tests/hostile/test_hostile_report.py)
    ids=["bad-number", "header-only"],
)
def test_priced_broken_file_is_refunded_with_one_message(
    pipeline: Pipeline, tmp_path: Path, content: str, error: str
) -> None:
    pipeline.reconfigure(report_price_credits=2)
    pipeline.start_worker()
    path = tmp_path / "broken.csv"
    path.write_text(content)
    pipeline.client.grant(22, 2)
    (job_id,) = pipeline.client.submit_report(22, None, path).job_ids
    (job,) = pipeline.wait([job_id])
    assert (job["status"], job["error_class"], job["credits"]) == (
        "failed",
        "USER_ERROR",
        "refunded",
    )
    assert error in job["error"]
    assert pipeline.client.balance(22).available == 2
    (msg,) = pipeline.messages(22)
    assert msg["method"] == "sendMessage"
    text = msg["text"]
    assert text.startswith("Sorry, your sales report for “broken.csv” could not be made.")
    assert error[:1].upper() + error[1:] in text
    assert text.endswith("Your 2 credits were refunded.")
    assert pipeline.ledger_ok()


def test_free_report_with_a_filter_and_duplicate_wakeups(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path, _, _ = export(tmp_path / "export.csv")
    (job_id,) = pipeline.client.submit_report(23, None, path, "7d", "Videos").job_ids
    # duplicate and late wake-ups for both steps: claims make them harmless
    for step in ("analyse", "deliver", "analyse"):
        pipeline.client.dispatcher.send(f"report.{step}", job_id)
    pipeline.start_worker(threads=4)
    (job,) = pipeline.wait([job_id])
    assert (job["status"], job["credits"], job["price"]) == ("succeeded", None, 0)
    (msg,) = pipeline.messages(23)
    assert msg["method"] == "sendDocument"
    assert msg["caption"].endswith(" · last 7 days to 29 Feb 2024 · Videos only")


def _cli_env(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("DATABASE_URL", "REDIS_URL", "REDIS_NAMESPACE", "STORAGE_DIR"):
        monkeypatch.setenv(key, pipeline.env[key])
    monkeypatch.setenv("REPORT_PRICE_CREDITS", "1")
    monkeypatch.chdir(tmp_path)  # no stray .env


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_worker_report_json(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_env(pipeline, monkeypatch, tmp_path)
    pipeline.reconfigure(report_price_credits=1)
    pipeline.start_worker()
    path, _, _ = export(tmp_path / "cli.csv", rows=200)
    pipeline.client.grant(24, 3)
    code, out, err = _run(
        "report", "--user", "24", "--chat", "240", "--csv", str(path), "--period", "90d", "--json"
    )
    assert (code, err) == (0, "")
    doc: dict[str, Any] = json.loads(out)
    assert set(doc) >= {"job_ids", "request_id", "credits_held", "available"}
    assert (doc["credits_held"], doc["available"]) == (1, 2)
    (job,) = pipeline.wait(doc["job_ids"])
    assert (job["status"], job["credits"], job["payload"]["period"]) == (
        "succeeded",
        "captured",
        "90d",
    )
    assert [m["method"] for m in pipeline.messages(240)] == ["sendDocument"]

    code, out, err = _run("report", "--user", "24", "--csv", str(tmp_path / "nope.csv"), "--json")
    assert (code, out) == (1, "")
    assert err.startswith("error: Refused: csv file ") and "does not exist" in err
    code, _, err = _run("report", "--user", "24", "--csv", str(path), "--period", "1y")
    assert code == 2 and "1y" in err
    assert pipeline.client.balance(24).available == 2
