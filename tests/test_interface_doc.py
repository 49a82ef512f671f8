"""docs/interface.md names every part of the public interface the code has: each configuration
variable (the framework's and every job kind's), each `worker` command and each method of the
bot's client. A variable, command or method added without a word in the document fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from worker.cli.main import _register, cli
from worker.client import AsyncClient, Client
from worker.config import EnvSettings, Settings
from worker.kinds import all_kinds

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parent.parent / "docs" / "interface.md"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _variables() -> set[str]:
    models: list[type[EnvSettings]] = [Settings]
    models += [k.settings_model for k in all_kinds() if k.settings_model is not None]
    return {name.upper() for model in models for name in model.model_fields}


def _commands(group: click.Group, prefix: str = "worker") -> dict[str, click.Command]:
    """Every command by its full name; a group that runs on its own counts as one too."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                found[path] = command
            found |= _commands(command, path)
        else:
            found[path] = command
    return found


def _option_variables() -> set[str]:
    """Variables that command options read (``envvar=``)."""
    _register()
    found = set()
    for command in _commands(cli).values():
        for param in command.params:
            envvar = param.envvar
            found |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return found


def test_every_variable_is_documented() -> None:
    doc = _doc()
    variables = _variables() | _option_variables()
    assert {"DATABASE_URL", "KIE_API_KEYS", "REPORT_PRICE_CREDITS"} <= variables
    missing = sorted(v for v in variables if f"`{v}`" not in doc)
    assert not missing, f"docs/interface.md does not document {', '.join(missing)}"


def test_every_command_is_documented() -> None:
    _register()
    doc = _doc()
    commands = set(_commands(cli))
    assert {"worker migrate", "worker jobs show", "worker ledger check"} <= commands
    missing = sorted(c for c in commands if not re.search(rf"^{re.escape(c)}\b", doc, re.M))
    assert not missing, f"docs/interface.md does not document {', '.join(missing)}"


def test_every_client_method_is_documented() -> None:
    doc = _doc()
    for cls in (Client, AsyncClient):
        names = [
            n
            for n, member in inspect.getmembers(cls)
            if not n.startswith("_") and (callable(member) or isinstance(member, property))
        ]
        assert "submit_video" in names
        missing = sorted(n for n in names if not re.search(rf"\.{n}\b|`{n}`", doc))
        assert not missing, f"docs/interface.md does not document {cls.__name__}: {missing}"


def test_the_document_cites_nothing_outside_the_repository() -> None:
    assert "CONTRACT" not in _doc()
