"""`worker demo` is the README's first command: it must run end to end on a fresh machine."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from rich.console import Console

from tests.conftest import ADMIN_URL, REDIS_URL, _db_url, drop_database
from worker.config import load_settings
from worker.demo import run_demo


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None, storage_dir=str(tmp_path), database_url=ADMIN_URL, redis_url=REDIS_URL
    )
    out = io.StringIO()
    suffix = uuid.uuid4().hex[:8]
    summary = run_demo(
        settings,
        render_seconds=1.0,
        timeout=90,
        console=Console(file=out, width=120),
        database=f"wt_demo_{suffix}",
        namespace=f"wtest-demo-{suffix}",
    )
    drop_database(_db_url(f"wt_demo_{suffix}"))
    assert summary["unfinished"] == 0 and summary["ledger_ok"]
    assert summary["succeeded"] == 5
    assert summary["failed"] == {"USER_ERROR": 1}
    assert len(summary["refused_at_submit"]) == 1
    assert summary["keys"]["demo-broke"][0] == "quarantined"
    assert (summary["credits_captured"], summary["credits_refunded"]) == (5, 1)
    # Every video was found by KIE's callback (the safety-net poll is two minutes away).
    assert summary["called_back"] == 5
    assert "summary" in out.getvalue()
