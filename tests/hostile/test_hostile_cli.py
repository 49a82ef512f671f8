"""Provider and user text in the CLI's tables is shown as written, never read as Rich markup
(issue 22, finding 9): a CSV cell ``[/bold]`` in a job's error used to crash `worker jobs ls`
and `worker jobs show` with MarkupError, and KIE's failMsg reaches the same code."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import PRODUCT
from worker.cli.main import cli
from worker.client import Client
from worker.config import Settings
from worker.db import Database

HOSTILE = [
    "line 3, column Title: '[/bold]' is not a number",
    "KIE failMsg: [/] [red]unbalanced[/green] [link=file:///etc/passwd]click[/link]",
    "[bold]not bold[/bold] \\[escaped] [@click=app.quit]x[/]",
]


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", settings.redis_namespace)
    monkeypatch.chdir(settings.storage_dir)

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout

    return invoke


@pytest.mark.parametrize("text", HOSTILE)
def test_error_and_timeline_text_is_printed_literally(
    run,
    client: Client,
    db: Database,
    text: str,  # type: ignore[no-untyped-def]
) -> None:
    client.grant(7, 5)
    job = client.submit_video(user_id=7, product={**PRODUCT, "title": "[/b] mug"}).job_ids[0]
    db.fetchone(
        "UPDATE jobs SET status = 'failed', error_class = 'USER_ERROR', error = %s, "
        "finished_at = now() WHERE id = %s RETURNING id",
        (text, job),
    )
    db.fetchone(
        "INSERT INTO job_events (job_id, event, detail) VALUES (%s, 'failed', %s) RETURNING id",
        (job, text),
    )
    code, out = run("jobs", "ls")
    assert code == 0
    assert text[:20] in out.replace("\n", "")
    code, out = run("jobs", "show", str(job))
    assert code == 0, out
    flat = " ".join(out.split())
    assert " ".join(text.split())[:40] in flat
