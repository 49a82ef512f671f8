"""`worker jobs stats`: how the queue is doing, at a glance or as one JSON document."""

from __future__ import annotations

from typing import Any

import click

from worker import stats as data
from worker.admission import Admission
from worker.cli.context import CliContext
from worker.cli.output import console, output, table
from worker.config import Settings
from worker.db import Database
from worker.kinds import all_kinds


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def stats(obj: CliContext, as_json: bool) -> None:
    """Counts by status and error class, step durations, refunds and credits."""
    with obj.db.transaction() as conn:
        # One snapshot for every query, so the tables add up.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        document = data.collect(conn)
    document["admission"] = admission_figures(obj.settings, obj.db)
    output(as_json, document, lambda: _print(document))


def admission_figures(settings: Settings, db: Database) -> dict[str, Any]:
    """Each gated kind's backlog at its bottleneck, users' waits and the ETA of a new request
    (``worker.admission``), by kind."""
    admission = Admission(settings, db)
    reports = {kind.name: admission.report(kind) for kind in all_kinds()}
    return {name: report for name, report in reports.items() if report is not None}


def _print_admission(figures: dict[str, Any]) -> None:
    for kind, f in figures.items():
        console.print()
        clear = duration(f["clear_seconds"]) if f["waiting"] else "-"
        table(
            f"{kind}: waiting for {f['provider']} {f['purpose']} slots "
            f"({'fair order' if f['fair_order'] else 'submit order'}): {f['waiting']} jobs, "
            f"clear in {clear}",
            ["account", "keys", "slots per minute"],
            [[a["account"], a["keys"], _per_minute(a["per_minute"])] for a in f["accounts"]]
            + [
                [
                    "all accounts",
                    sum(a["keys"] for a in f["accounts"]),
                    _per_minute(f["per_minute"]),
                ]
            ],
        )
        w = f["waits_last_hour"]
        console.print(
            f"users' waits, submit → slot (last hour, {w['jobs']} jobs): "
            f"p50 {duration(w['p50_seconds'])}, p95 {duration(w['p95_seconds'])}, "
            f"max {duration(w['max_seconds'])}"
        )
        limit = f["max_wait_seconds"]
        busy = (
            f"refused as Busy when its wait for a slot is over {duration(limit)}"
            if limit is not None
            else "no admission limit"
        )
        console.print(
            f"a new one-{kind} request now: ETA {duration(f['eta_seconds'])}, slot in "
            f"{duration(f['wait_seconds'])} ({busy})"
        )


def _per_minute(value: float | None) -> str:
    return "not paced" if value is None else f"{value:g}"


def duration(seconds: float | None) -> str:
    """Seconds as people read them: 0.42 s, 12.5 s, 3.2 min."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _print(doc: dict[str, Any]) -> None:
    hour, day = doc["windows"]["last_hour"], doc["windows"]["last_day"]
    all_time = doc["all_time"]

    estimated = " (finished: estimate)" if all_time["estimated"] else ""
    table(
        "jobs by status (created in the window)",
        ["status", "last hour", "last day", f"all time{estimated}"],
        [
            [s, hour["by_status"][s], day["by_status"][s], all_time["by_status"][s]]
            for s in data.STATUSES
        ]
        + [["total", hour["jobs"], day["jobs"], sum(all_time["by_status"].values())]],
    )

    classes = [
        c for c in data.ERROR_CLASSES if c in hour["by_error_class"] or c in day["by_error_class"]
    ]
    if classes:
        console.print()
        empty = {"failed": 0, "active": 0}
        table(
            "error classes (failed: final; retrying: current error of active jobs)",
            ["class", "failed 1h", "retrying 1h", "failed 24h", "retrying 24h"],
            [
                [
                    c,
                    hour["by_error_class"].get(c, empty)["failed"],
                    hour["by_error_class"].get(c, empty)["active"],
                    day["by_error_class"].get(c, empty)["failed"],
                    day["by_error_class"].get(c, empty)["active"],
                ]
                for c in classes
            ],
        )

    if day["provider_errors"]:
        console.print()
        last_hour = {(e["provider"], e["error_class"]): e["count"] for e in hour["provider_errors"]}
        table(
            "provider errors (every classified failure: retries, waits, final)",
            ["provider", "class", "last hour", "last day"],
            [
                [
                    e["provider"],
                    e["error_class"],
                    last_hour.get((e["provider"], e["error_class"]), 0),
                    e["count"],
                ]
                for e in day["provider_errors"]
            ],
        )

    if day["steps"]:
        console.print()
        in_hour = {(s["kind"], s["step"]): s for s in hour["steps"]}
        rows = []
        for s in day["steps"]:
            h = in_hour.get((s["kind"], s["step"]))
            rows.append(
                [
                    s["kind"],
                    s["step"],
                    h["jobs"] if h else 0,
                    duration(h["p50_seconds"]) if h else "-",
                    duration(h["p95_seconds"]) if h else "-",
                    s["jobs"],
                    duration(s["p50_seconds"]),
                    duration(s["p95_seconds"]),
                ]
            )
        for e in day["end_to_end"]:
            h = next((x for x in hour["end_to_end"] if x["kind"] == e["kind"]), None)
            rows.append(
                [
                    e["kind"],
                    "(submit → success)",
                    h["jobs"] if h else 0,
                    duration(h["p50_seconds"]) if h else "-",
                    duration(h["p95_seconds"]) if h else "-",
                    e["jobs"],
                    duration(e["p50_seconds"]),
                    duration(e["p95_seconds"]),
                ]
            )
        table(
            "step durations (from the timelines; queue waits and retries included)",
            ["kind", "step", "jobs 1h", "p50 1h", "p95 1h", "jobs 24h", "p50 24h", "p95 24h"],
            rows,
        )

    console.print()
    credits = all_time["credits"]
    table(
        "credits",
        ["", "last hour", "last day", "all time"],
        [
            [k, hour["credits"][k], day["credits"][k], credits[k]]
            for k in ("held", "captured", "refunded")
        ]
        + [
            [
                "refunded jobs",
                hour["credits"]["refunds"],
                day["credits"]["refunds"],
                credits["refunds"],
            ]
        ],
    )

    spend_day = doc.get("spend", {}).get("last_day") or []
    if spend_day:
        hour_rows = {(r["kind"], r["tier"], r["resource"]): r for r in doc["spend"]["last_hour"]}
        console.print()
        table(
            "provider spend by tier and model (jobs created in the window) and credits sold",
            ["kind", "tier", "model", "made 1h", "spent 1h", "made 24h", "spent 24h", "sold 24h"],
            [
                [
                    r["kind"],
                    r["tier"],
                    r["resource"],
                    hour_rows.get((r["kind"], r["tier"], r["resource"]), {}).get("made", 0),
                    f"{hour_rows.get((r['kind'], r['tier'], r['resource']), {}).get('spent', 0):g}",
                    r["made"],
                    f"{r['spent']:g} {r['unit']}".strip(),
                    r["sold"],
                ]
                for r in spend_day
            ],
        )

    _print_admission(doc.get("admission") or {})

    stuck = doc["stuck"]
    console.print()
    if stuck["total"]:
        examples = ", ".join(str(i) for i in stuck["examples"])
        console.print(
            f"[bold red]stuck jobs: {stuck['total']}[/bold red] "
            f"({stuck['queued_overdue']} queued and overdue by more than "
            f"{stuck['after_seconds'] / 60:g} min, {stuck['lease_expired']} running with an "
            f"expired lease; e.g. {examples}). Are workers running? Try `worker doctor`."
        )
    else:
        console.print("stuck jobs: none")
