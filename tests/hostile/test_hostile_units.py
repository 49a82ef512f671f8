"""The worker and receiver units bound what a flood can take (issue 22, finding 14): memory,
tasks and file descriptors, and no route to the metadata service; the numbers are explained in
docs/deploy.md. (`systemd-analyze security` staying <= 2.0 is tests/ops/test_systemd_units.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ops.test_systemd_units import directives
from worker.webhook_server import MAX_CONNECTIONS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)", value)
    assert m, value
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


@pytest.mark.parametrize("unit", ["worker@.service", "worker-webhooks.service"])
def test_units_limit_memory_tasks_and_files(unit: str) -> None:
    d = directives(unit)
    assert 64 << 20 <= _bytes(d["MemoryMax"][0]) <= 4 << 30
    assert 16 <= int(d["TasksMax"][0]) <= 512
    assert int(d["LimitNOFILE"][0]) >= MAX_CONNECTIONS + 256
    assert "169.254.0.0/16" in " ".join(d["IPAddressDeny"])
    docs = DOCS.read_text()
    for key in ("MemoryMax", "TasksMax", "LimitNOFILE", "IPAddressDeny"):
        assert f"{key}={d[key][0]}" in docs, f"docs/deploy.md does not explain {key}= of {unit}"


def test_deploy_docs_give_the_proxy_its_timeouts() -> None:
    docs = DOCS.read_text()
    for setting in ("client_header_timeout", "client_body_timeout", "proxy_request_buffering"):
        assert setting in docs
