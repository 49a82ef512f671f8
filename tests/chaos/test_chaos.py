"""The chaos suite: a reduced run in CI, the full run with `pytest tests/chaos --chaos-full`."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosConfig, ChaosRun

pytestmark = pytest.mark.chaos


@pytest.mark.timeout(720)  # the harness stops itself first (cfg.timeout) and reports
def test_the_two_promises_hold_under_chaos(request: pytest.FixtureRequest) -> None:
    full = bool(request.config.getoption("--chaos-full"))
    cfg = ChaosConfig.full() if full else ChaosConfig()
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    try:
        report = ChaosRun(cfg, workdir).run()
    finally:
        logs = sorted(workdir.glob("*.log"))
        tail = "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in logs)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {k: v for k, v in asdict(report).items() if k != "ledger_checks"}
    print(json.dumps(summary, indent=2))

    # Everything finished, and the chaos really happened.
    assert report.jobs == cfg.jobs and report.unfinished == 0, tail
    assert report.kills == cfg.kills and report.stalls == cfg.stalls
    assert report.redis_restarts == int(cfg.restart_redis)
    assert report.postgres_restarts == int(cfg.restart_postgres)
    # KIE called back, `worker webhooks` was killed once, and callbacks woke jobs.
    assert report.webhook_kills == cfg.webhook_kills
    assert report.callbacks_sent > 0 and report.callbacks_woke > 0
    # KIE paused the first model of the chain mid-run, then resumed it: jobs fell through to
    # the next model (no attempt used), and the pause cost few create calls.
    assert report.model_pauses == report.model_resumes == cfg.model_pauses
    assert report.fallbacks > 0 and report.paused_creates >= report.fallbacks
    # Never lose a user's credits.
    assert report.ledger_ok, report.ledger_checks
    # Never pay twice: every paid creation belongs to a job, and no job paid for more than
    # its generations, even where a kill or a stall landed between a create and its commit
    # (that job fails as "outcome unknown" and is refunded).
    assert report.unattributed_tasks == 0
    assert report.duplicate_creates == 0, report.jobs_paid_twice
    # Exactly one final message per job (a send cut by a kill is never repeated).
    assert not report.videos_twice and not report.failure_messages_twice
    assert not report.videos_missing and not report.failure_messages_missing
