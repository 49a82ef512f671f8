"""The systemd units in deploy/systemd: valid for systemd, hardened, and consistent with the code.

`systemd-analyze` works without systemd running (as in a container). The units point at
/opt/worker/venv/bin/worker, which does not exist here, so `verify` runs on a copy whose
ExecStart= names this virtual environment's `worker`. `User=worker` need not exist: neither
`verify` nor `security --offline` resolves it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import Settings, credential_variables, setting_models

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED_BINARY = "/opt/worker/venv/bin/worker"
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed (Debian package `systemd`; .ci/run installs it)",
)


def directives(unit: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, every value of a key in order."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?", value)
    assert m, f"unexpected time span {value!r}"
    scale = {"ms": 0.001, "min": 60.0, "m": 60.0}.get(m.group(2) or "s", 1.0)
    return float(m.group(1)) * scale


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """A copy of the units whose ExecStart= names a binary that exists here."""
    candidate = Path(sys.executable).parent / "worker"
    binary = str(candidate) if candidate.exists() else shutil.which("worker") or "/bin/true"
    for path in UNITS.iterdir():
        if path.suffix in (".service", ".target"):
            (tmp_path / path.name).write_text(path.read_text().replace(INSTALLED_BINARY, binary))
    return tmp_path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


@needs_analyze
def test_systemd_analyze_verify_prints_nothing(unit_dir: Path) -> None:
    units = [unit_dir / "worker@1.service", unit_dir / "worker.target"]
    units += [unit_dir / p.name for p in UNITS.glob("worker-*.service")]
    res = analyze("verify", "--man=no", "--generators=no", *map(str, units))
    # verify exits 0 on most warnings ("Unknown key ..., ignoring"): its output is the verdict.
    assert (res.returncode, res.stdout + res.stderr) == (0, "")


@needs_analyze
@pytest.mark.parametrize(
    "unit", ["worker@1.service", "worker-migrate.service", "worker-webhooks.service"]
)
def test_security_exposure_is_low(unit_dir: Path, unit: str) -> None:
    if not (UNITS / unit.replace("@1", "@")).exists():
        pytest.skip(f"no {unit}")
    res = analyze("security", "--offline=yes", str(unit_dir / unit))
    if "--offline" in res.stderr and res.returncode != 0:
        pytest.skip(f"this systemd-analyze has no --offline (systemd < 250): {res.stderr.strip()}")
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", res.stdout)
    assert m, res.stdout + res.stderr
    flagged = [line for line in res.stdout.splitlines() if line.startswith("✗")]
    assert float(m.group(1)) <= MAX_EXPOSURE, "\n".join(flagged)


def test_worker_unit_lifecycle_settings() -> None:
    d = directives("worker@.service")
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["KillMode"] == ["mixed"]  # a second SIGTERM to the main process kills it at once
    assert d["Restart"] == ["always"] and seconds(d["RestartSec"][0]) >= 1
    assert d["PartOf"] == ["worker.target"] and d["WantedBy"] == ["worker.target"]
    assert re.search(r"\brun\b.*--instance %i\b", d["ExecStart"][0])
    assert d["User"] == ["worker"] and d["StateDirectory"] == ["worker"]
    assert any(v.startswith("STORAGE_DIR=%S/worker/") for v in d["Environment"])
    assert d["EnvironmentFile"] == ["/etc/worker/worker.env", "-/etc/worker/worker-%i.env"]
    # Stopping must outlast the drain, and the watchdog must leave room for a slow health check.
    assert seconds(d["TimeoutStopSec"][0]) > Settings.model_fields["drain_seconds"].default + 10
    assert 10 <= seconds(d["WatchdogSec"][0]) <= 120
    assert d["MemoryDenyWriteExecute"] == ["yes"]  # tests/pipeline/test_sd_notify.py runs under it


#: Credentials only `worker webhooks` reads (workers never see them).
WEBHOOK_CREDENTIALS = ("KIE_WEBHOOK_HMAC_KEY",)


def _credentials(unit: str) -> tuple[dict[str, str], set[str]]:
    """What a unit loads (name -> path), and which of those have an empty fallback."""
    d = directives(unit)
    loaded = {v.partition(":")[0]: v.partition(":")[2] for v in d["LoadCredential"]}
    return loaded, {v.partition(":")[0] for v in d.get("SetCredential", [])}


def test_every_credential_the_code_reads_is_loaded() -> None:
    loaded, fallbacks = _credentials("worker@.service")
    for variable in credential_variables():
        name = variable.lower()
        if variable in WEBHOOK_CREDENTIALS:
            assert name not in loaded, f"{variable} is for worker-webhooks only"
            continue
        assert loaded.get(name) == f"/etc/worker/credentials/{name}", variable
    # Optional ones have an empty fallback; the keys and the bot token are required.
    assert fallbacks == {"sentry_dsn", "pgpass"}
    loaded, fallbacks = _credentials("worker-webhooks.service")
    for variable in WEBHOOK_CREDENTIALS:
        name = variable.lower()
        assert loaded.get(name) == f"/etc/worker/credentials/{name}", variable
    # The receiver holds no provider key, token or DSN; its HMAC key is optional.
    assert set(loaded) == {"kie_webhook_hmac_key", "pgpass"} and fallbacks == set(loaded)


def test_webhooks_unit_lifecycle_settings() -> None:
    d = directives("worker-webhooks.service")
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["KillMode"] == ["mixed"] and d["Restart"] == ["always"]
    assert d["PartOf"] == ["worker.target"] and d["WantedBy"] == ["worker.target"]
    assert re.search(r"\bwebhooks$", d["ExecStart"][0])
    assert d["EnvironmentFile"] == ["/etc/worker/worker.env"]
    from worker.webhook_server import SHUTDOWN_SECONDS

    assert seconds(d["TimeoutStopSec"][0]) > SHUTDOWN_SECONDS + 5
    assert 10 <= seconds(d["WatchdogSec"][0]) <= 120


def test_env_example_documents_every_setting_and_no_secret() -> None:
    text = (UNITS / "worker.env.example").read_text()
    assigned = {m.group(1) for m in re.finditer(r"^#?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)}
    names = {name for model in setting_models() for name in model.model_fields}
    for name in names:
        variable = name.upper()
        if variable in credential_variables():
            assert variable not in assigned, f"{variable} is a secret: LoadCredential= only"
            assert variable in text, f"{variable} is not mentioned"
        else:
            assert variable in assigned, f"{variable} is missing from worker.env.example"
    assert not assigned - {n.upper() for n in names}, "unknown variables"
