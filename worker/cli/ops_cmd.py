"""`worker migrate`, `worker fake-provider` (and later `run`, `demo`)."""

from __future__ import annotations

import click

from worker.cli.context import CliContext
from worker.cli.output import emit_json


@click.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--print-schema",
    is_flag=True,
    help="Then print the schema as it stands (tables, indexes, functions, triggers) as SQL "
    "(with --json: as the document's 'schema').",
)
@click.pass_obj
def migrate(obj: CliContext, as_json: bool, print_schema: bool) -> None:
    """Apply pending migrations (creates the database if missing). Safe to run again, and from
    several hosts at once."""
    from worker.migrate import migrate as run_migrations
    from worker.schema import of_database

    applied = run_migrations(obj.settings.database_url)
    schema = of_database(obj.settings.database_url) if print_schema else None
    if as_json:
        names = [f"{m.version:04d}_{m.name}" for m in applied]
        emit_json({"applied": names, **({"schema": schema} if schema is not None else {})})
    elif schema is not None:
        click.echo(schema, nl=False)
    elif applied:
        for m in applied:
            click.echo(f"applied {m.version:04d}_{m.name}")
    else:
        click.echo("database is up to date")


COMMANDS = [migrate]


@click.command("run")
@click.option("--threads", type=click.IntRange(1, 256), help="Worker threads (WORKER_THREADS, 8).")
@click.option(
    "--instance",
    type=click.IntRange(0, 9999),
    default=0,
    show_default=True,
    help="Instance number (systemd's %i): metrics port offset and log prefix.",
)
@click.pass_obj
def run_cmd(obj: CliContext, threads: int | None, instance: int) -> None:
    """Run one worker process until SIGTERM (what `systemctl start worker@N` starts)."""
    import sys

    from worker.runner import run

    sys.exit(run(obj.settings, threads=threads, instance=instance))


@click.command("fake-provider")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8900, show_default=True)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON file with the simulator's settings and faults.",
)
@click.option("--render-seconds", type=float, help="How long a provider takes to render.")
@click.option("--seed", type=int, help="Seed for the injected faults (reproducible runs).")
def fake_provider(
    host: str, port: int, config_file: str | None, render_seconds: float | None, seed: int | None
) -> None:
    """Run the local simulator of the providers' and Telegram's APIs."""
    import argparse

    from simulator.__main__ import load_config
    from simulator.server import serve

    args = argparse.Namespace(
        host=host, port=port, config=config_file, render_seconds=render_seconds, seed=seed
    )
    serve(host, port, load_config(args))


COMMANDS.extend([run_cmd, fake_provider])


@click.command("demo")
@click.option("--render-seconds", type=float, default=3.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document.")
@click.option(
    "--dashboard",
    is_flag=True,
    help="Then serve `worker dashboard` on the demo's jobs, with one-time credentials, "
    "until Ctrl-C.",
)
@click.option(
    "--embedded",
    is_flag=True,
    help="Run on an embedded PostgreSQL and Redis in a temporary directory (the default when "
    "DATABASE_URL and REDIS_URL are unset and nothing answers at 127.0.0.1).",
)
@click.option(
    "--keep", is_flag=True, help="Keep the embedded servers up until Ctrl-C, printing their URLs."
)
@click.pass_obj
def demo(
    obj: CliContext,
    render_seconds: float,
    as_json: bool,
    dashboard: bool,
    embedded: bool,
    keep: bool,
) -> None:
    """Run the whole pipeline on local services and the simulator, with a summary."""
    import sys

    from rich.console import Console

    from worker.demo import run_demo
    from worker.embedded import for_demo, hold

    console = Console(stderr=True) if as_json else Console()
    with for_demo(obj.settings, force=embedded, say=console.print) as place:
        summary = run_demo(
            place.settings, render_seconds=render_seconds, console=console, dashboard=dashboard
        )
        if as_json:
            emit_json(summary)
        if place.servers is not None and keep:
            hold(place.servers, "worker_demo", "worker-demo", console.print)
        elif place.servers is not None:
            console.print("The embedded servers are removed now (--keep keeps them up).")
    ok = summary["ledger_ok"] and summary["unfinished"] == 0
    sys.exit(0 if ok else 1)


COMMANDS.append(demo)
