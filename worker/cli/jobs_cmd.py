"""`worker jobs ls|show|retry|cancel` (and `stats`)."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.context import CliContext
from worker.cli.output import console, field, output, short_time, table
from worker.cli.stats_cmd import stats

STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]


@click.group("jobs")
def jobs() -> None:
    """List, inspect, retry and cancel jobs."""


@jobs.command("ls")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--user", "user_id", type=int)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def ls(obj: CliContext, status: str | None, user_id: int | None, limit: int, as_json: bool) -> None:
    """List the newest jobs."""
    rows = obj.client.jobs(status=status, user_id=user_id, limit=limit)
    output(
        as_json,
        rows,
        lambda: table(
            None,
            ["id", "kind", "user", "status", "step", "att", "credits", "error", "created"],
            [
                [
                    j["id"],
                    j["kind"],
                    j["user_id"],
                    j["status"],
                    j["step"],
                    j["attempts"],
                    j["credits"],
                    f"{j['error_class']}: {j['error']}" if j["error_class"] else (j["error"] or ""),
                    short_time(j["created_at"]),
                ]
                for j in rows
            ],
        ),
    )


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def show(obj: CliContext, job_id: int, as_json: bool) -> None:
    """Show a job and its event timeline."""
    job = obj.client.job(job_id)
    output(as_json, job, lambda: _show(job))


def _sold(job: dict[str, Any]) -> str:
    """``standard / <model> (41 provider credits)``: what was sold, what made it, its cost."""
    if not job.get("tier") and not job.get("model"):
        return ""
    text = f"{job.get('tier') or '-'} / {job.get('model') or '-'}"
    spend = job.get("spend")
    if isinstance(spend, dict) and spend.get("amount") is not None:
        text += f" ({spend['amount']:g} {spend.get('unit') or 'provider credits'})"
    return text


def _show(job: dict[str, Any]) -> None:
    fields = [
        ("job", f"{job['id']} ({job['kind']})"),
        ("user / chat", f"{job['user_id']} / {job['chat_id']}"),
        (
            "status",
            job["status"] + (f" at step {job['step']}" if job["status"] != "succeeded" else ""),
        ),
        ("attempts", f"{job['attempts']} in this step, {job['rescues']} rescue(s)"),
        ("credits", f"{job['price']} {job['credits'] or 'free'}"),
        ("provider task", f"{job['provider_task_id'] or '-'} (key {job['key_name'] or '-'})"),
        ("tier / model", _sold(job)),
        ("error", f"{job['error_class']}: {job['error']}" if job["error_class"] else job["error"]),
        ("result", job["result"]),
        ("telegram file", job.get("telegram_file_id")),
        ("created", short_time(job["created_at"])),
        ("deadline", short_time(job["deadline_at"])),
        ("finished", short_time(job["finished_at"])),
        (
            "request",
            job["request_id"] + (f", clone of {job['cloned_from']}" if job["cloned_from"] else ""),
        ),
    ]
    for name, value in fields:
        if value:
            field(name, value)
    console.print()
    table(
        "timeline",
        ["at", "event", "detail"],
        [[short_time(e["at"]), e["event"], e["detail"]] for e in job["events"]],
    )


@jobs.command("cancel")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def cancel(obj: CliContext, job_id: int, as_json: bool) -> None:
    """Cancel a queued job and refund its credits."""
    job = obj.client.cancel(job_id)
    output(as_json, job, lambda: click.echo(f"job {job_id} cancelled; credits {job['credits']}"))


@jobs.command("retry")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def retry(obj: CliContext, job_id: int, as_json: bool) -> None:
    """Run a failed or cancelled job again as a new job (charged again)."""
    result = obj.client.retry(job_id)
    output(
        as_json,
        result.as_dict(),
        lambda: click.echo(
            f"job {job_id} {'was already retried as' if result.replayed else 'retried as'} job "
            f"{result.job_ids[0]}; {result.credits_held} credit(s) held, "
            f"{result.available} available"
        ),
    )


jobs.add_command(stats)

COMMANDS = [jobs]
