"""The check that keeps Dramatiq's internals (worker/dramatiq_internals.py) to the versions they
were written against, and the pin in pyproject.toml that matches it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dramatiq
import pytest

from worker.dramatiq_internals import SUPPORTED, UnsupportedDramatiq, check_version

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("version", ["2.0.0", "2.0", "2.1.0", "2.2.0", "2.2.1", " 2.2.9 "])
def test_supported_versions_pass(version: str) -> None:
    check_version(version)


@pytest.mark.parametrize(
    "version", ["1.18.0", "2.3.0", "2.10.1", "3.0.0", "2.2.0rc1", "2", "", "garbage"]
)
def test_other_versions_are_refused_with_the_range(version: str) -> None:
    with pytest.raises(UnsupportedDramatiq) as info:
        check_version(version)
    message = str(info.value)
    assert f"Dramatiq {version} is installed" in message
    assert "dramatiq>=2.0,<2.3" in message and "pip install 'dramatiq[redis]>=2.0,<2.3'" in message


def test_the_installed_version_is_supported() -> None:
    check_version()
    check_version(dramatiq.__version__)


def test_importing_with_another_version_fails_at_once() -> None:
    """The check runs on import, so the worker and the bot's client stop at start."""
    code = "import dramatiq; dramatiq.__version__ = '2.3.0'\nimport worker.broker\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "UnsupportedDramatiq: Dramatiq 2.3.0 is installed" in done.stderr


def test_pyproject_pins_the_range_the_check_accepts() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [d for d in deps if re.match(r"dramatiq\b", d)]
    assert pinned == [f"dramatiq[redis]{SUPPORTED}"]
