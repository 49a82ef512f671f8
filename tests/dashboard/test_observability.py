"""The observability pack in deploy/: alert rules promtool accepts and whose alerts fire on the
series they should, a Grafana dashboard, both naming only metrics the processes export; and the
hourly ledger check that exports its result."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.registry import REGISTRY, CollectorRegistry

from worker.broker import redis_client
from worker.config import Settings
from worker.db import Database

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
GRAFANA = ROOT / "deploy" / "grafana" / "worker.json"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PROMTOOL = shutil.which("promtool")

#: Series Prometheus makes itself, not the worker.
BUILT_IN = {"up"}

#: Metrics the rules use that no process exports yet, and who is to export them. The test
#: fails as soon as one is exported, so this list only shrinks.
#: Metrics a rule may name before anything exports them (none today).
PENDING: dict[str, str] = {}

METRIC = re.compile(r"\b(?:worker_[a-z0-9_]+|up)\b(?=\s*[{\[)\s=<>!*/+-]|\s*$)")


def exported_names(settings: Settings, db: Database) -> set[str]:
    """Every series name `worker run` and `worker webhooks` can expose: the counters and
    histograms they register at import, and the gauges their collector computes at scrape
    time (against the real PostgreSQL and Redis)."""
    import worker.runner
    import worker.webhook_server  # noqa: F401
    from worker.metrics_collector import install

    registry = CollectorRegistry()
    install(settings, db, redis_client(settings), registry=registry)
    names: set[str] = set()
    for family in [*REGISTRY.collect(), *registry.collect()]:
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum", "_created")}
        else:
            names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


def rule_metrics() -> set[str]:
    exprs = []
    lines = iter(ALERTS.read_text().splitlines())
    for line in lines:
        m = re.match(r"^(\s*)expr:\s*(\|)?\s*(.*)$", line)
        if not m:
            continue
        if m.group(2):  # a block: the lines indented deeper than "expr:"
            indent = len(m.group(1))
            for more in lines:
                if more.strip() and len(more) - len(more.lstrip()) <= indent:
                    break
                exprs.append(more)
        else:
            exprs.append(m.group(3))
    return set(METRIC.findall("\n".join(exprs)))


def grafana_metrics() -> set[str]:
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard queries nothing"
    return set(METRIC.findall("\n".join(exprs)))


def test_every_metric_the_alert_rules_name_is_exported(settings: Settings, db: Database) -> None:
    names = rule_metrics()
    assert {"worker_jobs_finished_total", "worker_ledger_check_ok", "up"} <= names
    exported = exported_names(settings, db) | BUILT_IN
    missing = names - exported - set(PENDING)
    assert not missing, f"alert rules use metrics nobody exports: {sorted(missing)}"
    arrived = set(PENDING) & exported
    assert not arrived, f"now exported, take them off PENDING: {sorted(arrived)}"


def test_every_metric_the_grafana_dashboard_queries_is_exported(
    settings: Settings, db: Database
) -> None:
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    names = grafana_metrics()
    missing = names - exported_names(settings, db) - BUILT_IN
    assert not missing, f"the dashboard queries metrics nobody exports: {sorted(missing)}"


def test_every_alert_has_a_runbook_line() -> None:
    doc = DEPLOY_DOC.read_text()
    rules = ALERTS.read_text()
    alerts = re.findall(r"^\s*- alert:\s*(\w+)", rules, re.M)
    assert len(alerts) >= 10
    runbooks = set(re.findall(r'runbook:\s*"docs/deploy\.md#([a-z]+)"', rules))
    assert len(runbooks) >= len(alerts) - 2  # a few alerts share a runbook
    for anchor in runbooks:
        assert f'<a id="{anchor}"></a>' in doc, f"docs/deploy.md has no runbook #{anchor}"
    for name in alerts:
        assert f"**{name}**" in doc, f"docs/deploy.md has no runbook line for {name}"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian package prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    check = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr


# --- the hourly ledger check ------------------------------------------------------------------


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_ledger_audit_exports_its_result_and_runs_once_an_interval(db: Database) -> None:
    from worker.ledger_audit import LedgerAudit

    now = [1000.0]
    audit = LedgerAudit(db, interval=3600, clock=lambda: now[0])
    thread = audit.after_tick()
    assert thread is not None
    thread.join(30)
    assert _sample("worker_ledger_check_ok") == 1.0
    assert _sample("worker_maintenance_leader_tick_timestamp_seconds")
    assert audit.after_tick() is None  # not due again within the hour
    with db.transaction() as conn:  # a counter nobody's transfer explains
        conn.execute(
            "UPDATE accounts SET credits_posted = credits_posted + 7 WHERE code = 'system:revenue'"
        )
    now[0] += 3600
    thread = audit.after_tick()
    assert thread is not None
    thread.join(30)
    assert _sample("worker_ledger_check_ok") == 0.0
    assert (
        _sample(
            "worker_ledger_check_failed", check="account counters equal a replay of the transfers"
        )
        == 1.0
    )
    assert _sample("worker_ledger_check_failed", check="no account is overdrawn") == 0.0


def test_the_maintenance_leader_runs_the_ledger_check(settings: Settings) -> None:
    from worker import ledger_audit
    from worker.runner import WorkerProcess

    before = _sample("worker_ledger_check_timestamp_seconds") or 0.0
    ledger_audit._audits.clear()
    w = WorkerProcess(settings, threads=1)  # a worker process's own services, not started
    w.db.open()
    try:
        assert w.maintenance.run_once() is not None  # the only process: it is the leader
        audit = ledger_audit.for_database(w.db)
        assert audit._running is not None
        audit._running.join(30)
        assert (_sample("worker_ledger_check_timestamp_seconds") or 0.0) > before
        assert audit.last is not None and all(c.ok for c in audit.last)
    finally:
        w.services.close()
        w.db.close()
        w.broker.close()
