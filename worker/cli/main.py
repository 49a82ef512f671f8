"""`worker`: the command line for operators and for anyone asking "what happened to job 42?"."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import psycopg
import redis

from worker.cli.context import CliContext
from worker.cli.output import fail
from worker.errors import ConfigError, InvalidRequest, RequestRefused, WorkerError
from worker.redaction import install_logging, redact


class WorkerGroup(click.Group):
    """Turns our typed errors into one sentence on stderr and the contract's exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail(str(exc), 2)
        except InvalidRequest as exc:
            fail(f"refused: {exc}", 1)
        except RequestRefused as exc:
            fail(str(exc), 1)
        except WorkerError as exc:
            fail(str(exc), 1)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fail(
                f"cannot reach PostgreSQL ({redact(first)}); check DATABASE_URL and that the "
                "server is running",
                1,
            )
        except psycopg.errors.UndefinedTable:
            fail("the database has no schema yet; run `worker migrate`", 1)
        except redis.ConnectionError:
            fail("cannot reach Redis; check REDIS_URL and that the server is running", 1)


@click.group(cls=WorkerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Job-queue worker: run workers, submit and inspect jobs, move credits."""
    install_logging(logging.WARNING)
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    ctx.obj = CliContext()
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from worker.cli import (
        credits_cmd,
        dashboard_cmd,
        doctor_cmd,
        jobs_cmd,
        keys_cmd,
        ledger_cmd,
        models_cmd,
        ops_cmd,
        storage_cmd,
        webhooks_cmd,
    )
    from worker.kinds import all_kinds

    modules = (
        credits_cmd,
        jobs_cmd,
        keys_cmd,
        ledger_cmd,
        models_cmd,
        ops_cmd,
        storage_cmd,
        webhooks_cmd,
        doctor_cmd,
        dashboard_cmd,
    )
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)
    # Each job kind's own commands (e.g. one that submits a job of that kind from the shell).
    for kind in all_kinds():
        for command in kind.commands():
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="worker", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
