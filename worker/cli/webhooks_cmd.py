"""`worker webhooks`: serve the providers' callbacks (the webhooks the job kinds declare)."""

from __future__ import annotations

import click

from worker.cli.context import CliContext


@click.command("webhooks")
@click.option("--host", help="Address to listen on (WEBHOOK_HOST, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port (WEBHOOK_PORT, 8088; 0 picks a free one)."
)
@click.pass_obj
def webhooks(obj: CliContext, host: str | None, port: int | None) -> None:
    """Serve provider callbacks until SIGTERM: a callback makes the job's poll run now.

    Put it behind your HTTPS proxy and set each webhook's URL variable to its public address
    of /callbacks/KIND/NAME; `worker doctor` checks each one (what systemd's
    worker-webhooks.service runs)."""
    import sys

    from worker.webhook_server import serve

    settings = obj.settings
    sys.exit(
        serve(
            settings,
            host if host is not None else settings.webhook_host,
            port if port is not None else settings.webhook_port,
        )
    )


COMMANDS = [webhooks]
