"""`worker dashboard [--host H] [--port P]` and `worker dashboard hash-password`."""

from __future__ import annotations

import sys

import click

from worker.cli.context import CliContext
from worker.dashboard import DEFAULT_HOST, DEFAULT_PORT, auth
from worker.errors import ConfigError


@click.group("dashboard", invoke_without_command=True)
@click.option(
    "--host",
    envvar="DASHBOARD_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (DASHBOARD_HOST). Beyond loopback, DASHBOARD_USERS is required.",
)
@click.option(
    "--port",
    envvar="DASHBOARD_PORT",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port (DASHBOARD_PORT).",
)
@click.pass_context
def dashboard(ctx: click.Context, host: str, port: int) -> None:
    """Serve the web dashboard: jobs, timelines, credits, keys; retry and cancel for admins.

    Users and roles come from DASHBOARD_USERS (or a credential file of that name):
    comma-separated name:role:hash, role viewer or admin, the hash from
    `worker dashboard hash-password`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from worker.dashboard import app as dashboard_app

    obj: CliContext = ctx.obj
    users = auth.load_users()
    dashboard_app.check_bind(host, users)
    sys.exit(dashboard_app.serve(obj.settings, host, port, users))


@dashboard.command("hash-password")
def hash_password() -> None:
    """Read a password on standard input (one line) and print its hash for DASHBOARD_USERS."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    click.echo(auth.hash_password(password))


COMMANDS = [dashboard]
