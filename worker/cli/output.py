"""How the CLI talks: one JSON document with --json, aligned tables for people, and errors as
one sentence on stderr with exit status 1 (refused or failed) or 2 (bad usage)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from worker.redaction import redact

console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one sentence to stderr and exit."""
    message = redact(message).strip()
    if message and message[-1] not in ".!?":
        message += "."
    click.echo(f"error: {message[:1].upper() + message[1:]}", err=True)
    sys.exit(code)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table of ``rows``; every cell is plain text (``Text``), never read as Rich markup: a
    job's error or a provider's message may hold ``[/bold]`` or ``[link=...]``."""
    t = Table(
        title=None if title is None else Text(title),
        show_edge=False,
        header_style="bold",
        title_justify="left",
        pad_edge=False,
    )
    for i, column in enumerate(columns):
        last = i == len(columns) - 1
        t.add_column(Text(column), overflow="fold", no_wrap=not last)
    for row in rows:
        t.add_row(*(plain(cell) for cell in row))
    console.print(t)


def plain(value: Any) -> Text:
    """``value`` as text Rich prints as it is (no markup, no emoji codes)."""
    return Text("" if value is None else str(value))


def field(name: str, value: Any, width: int = 14) -> None:
    """``name`` in bold, right-aligned to ``width``, then ``value`` as plain text."""
    console.print(Text.assemble((f"{name:>{width}}", "bold"), "  ", plain(value)))


def submit_result(result: Any, as_json: bool) -> None:
    """What `worker submit` and `worker report` print: the contract's submit JSON, or a table."""
    if as_json:
        emit_json(result.as_dict())
        return
    table(
        "replayed: the first result of this idempotency key" if result.replayed else None,
        ["jobs", "request", "credits held", "available"],
        [
            [
                ", ".join(map(str, result.job_ids)),
                result.request_id,
                result.credits_held,
                result.available,
            ]
        ],
    )


def short_time(value: str | None) -> str:
    """ISO timestamp → 'YYYY-MM-DD HH:MM:SS' for tables."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]


def output(as_json: bool, document: Any, human: Callable[[], None]) -> None:
    if as_json:
        emit_json(document)
    else:
        human()


@contextmanager
def status(message: str) -> Iterator[None]:
    with err_console.status(message):
        yield
