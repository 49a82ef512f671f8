"""`worker demo`: the whole pipeline on the local PostgreSQL and Redis, against the simulator.

It uses its own database (``worker_demo`` on the configured server) and Redis namespace, both
reset at the start, so it never touches real jobs or credits. It starts the simulator, `worker
webhooks` (the simulator calls back when a provider's work is done) and two ``worker run``
processes, submits the jobs of each kind's demo scenario (:class:`DemoScenario`, declared by the
kind as ``JobKind.demo_module`` and loaded only here), shows live progress, and ends with a
summary.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from worker.client import Client
from worker.config import Settings, load_settings
from worker.errors import WorkerError
from worker.keys import KeyPool
from worker.kinds import all_kinds
from worker.migrate import migrate

BOT_TOKEN = "4242:demo-telegram-token"
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class DemoPlace:
    """Where the demo's services listen: the simulator and `worker webhooks`."""

    simulator_url: str
    webhook_url: str


@dataclass(frozen=True)
class DemoScenario:
    """A kind's part of the demo (``SCENARIO`` in the module ``JobKind.demo_module`` names).

    ``environment`` gives the kind's variables (keys, base URLs of the simulator),
    ``simulator`` its sections of the simulator's configuration, ``submit`` grants credits
    and submits the jobs (returning the refusals at submit, one line each), ``users`` are the
    users whose balances the summary adds up, and ``describe`` names a job in the progress table.
    """

    kind: str
    environment: Callable[[DemoPlace], dict[str, str]]
    simulator: Callable[[float], dict[str, Any]]
    submit: Callable[[Client], list[str]]
    users: tuple[int, ...]
    describe: Callable[[Mapping[str, Any]], str]
    #: What `worker webhooks` is for in this scenario (shown when it starts).
    callback_note: str = "providers call back when their work is done"
    #: Rows the kind adds to the summary, from the finished jobs: ``[(label, text), ...]``.
    notes: Callable[[Client, list[dict[str, Any]]], list[tuple[str, str]]] | None = None


def scenarios() -> list[DemoScenario]:
    """The demo scenario of every kind that declares one (imported here, never at start-up)."""
    found = []
    for kind in all_kinds():
        if kind.demo_module is not None:
            scenario = importlib.import_module(kind.demo_module).SCENARIO
            assert isinstance(scenario, DemoScenario), kind.demo_module
            found.append(scenario)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_database_url(base: str, name: str) -> str:
    """``base`` pointed at the demo's own database ``name``. A ``dbname=`` in the query string
    overrides the path (and a ``service=`` may name one), so both are dropped; whatever the
    result names is then checked (:func:`_own_database`)."""
    if "demo" not in name:
        raise WorkerError(f"the demo only runs in a database of its own (named *demo*): {name!r}")
    url = _with_database(base, name)
    _own_database(url, name)
    return url


def _with_database(base: str, name: str) -> str:
    parts = urlsplit(base)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("dbname", "service")
    ]
    encoded = urlencode(query, safe="/")
    # not urlunsplit: it turns postgresql:///db (no host: libpq's socket) into postgresql:/db
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{encoded}" if encoded else "")


def _own_database(url: str, name: str) -> None:
    """Refuse ``url`` unless libpq would connect to the database ``name``: the demo drops,
    migrates and fills its database, so it must never land on another one."""
    try:
        found = conninfo_to_dict(url).get("dbname")
    except psycopg.ProgrammingError:
        found = None
    if found != name:
        raise WorkerError(
            f"the demo only uses its own database {name!r}; DATABASE_URL would make it use "
            f"{found!r}, so it stops before touching anything"
        )


def _reset(settings: Settings) -> None:
    url = settings.database_url
    name = urlsplit(url).path.lstrip("/")
    _own_database(url, name)
    admin = _with_database(url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    migrate(url)
    with psycopg.connect(url) as conn:  # the very database the demo fills
        row = conn.execute("SELECT current_database()").fetchone()
    if row is None or row[0] != name:
        raise WorkerError(f"the demo reached database {row and row[0]!r}, not its own {name!r}")
    r = redis.Redis.from_url(settings.redis_url)
    keys = list(r.scan_iter(f"{settings.redis_namespace}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def _wait_http(url: str, timeout: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def run_demo(
    base: Settings,
    *,
    render_seconds: float = 3.0,
    timeout: float = 180.0,
    console: Console | None = None,
    database: str = "worker_demo",
    namespace: str = "worker-demo",
    dashboard: bool = False,
) -> dict[str, Any]:
    console = console or Console()
    started = time.monotonic()
    port = _free_port()
    sim_url = f"http://127.0.0.1:{port}"
    webhook_port = _free_port()
    storage = Path(base.storage_dir).resolve() / "demo"
    place = DemoPlace(sim_url, f"http://127.0.0.1:{webhook_port}")
    plays = scenarios()
    env_settings = {
        "DATABASE_URL": _demo_database_url(base.database_url, database),
        "REDIS_URL": base.redis_url,
        "REDIS_NAMESPACE": namespace,
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": sim_url,
        # the simulator serves the results over plain HTTP on loopback (worker.storage)
        "RESULT_HOSTS": "127.0.0.1",
        "RESULT_ALLOW_HTTP": "true",
        "STORAGE_DIR": str(storage),
        "BACKOFF_BASE_SECONDS": "0.5",
        "MAINTENANCE_INTERVAL_SECONDS": "1",
        "WEBHOOK_PORT": str(webhook_port),
    }
    sim_config: dict[str, Any] = {"telegram": {"bot_token": BOT_TOKEN}}
    for play in plays:
        env_settings.update(play.environment(place))
        sim_config.update(play.simulator(render_seconds))
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in env_settings.items()})
    describe = {play.kind: play.describe for play in plays}
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="worker-demo-"))
    env = {**os.environ, **env_settings}
    env.pop("METRICS_PORT", None)  # two processes on one port would collide
    try:
        notes = "; ".join(play.callback_note for play in plays)
        _start_services(console, settings, place, port, sim_config, env, logs, procs, notes)
        console.print("[bold]4.[/bold] granting credits and submitting jobs")
        refused: list[str] = []
        with Client(settings) as client:
            for play in plays:
                refused += play.submit(client)

            console.print("[bold]5.[/bold] starting two worker processes (4 threads each)")
            for instance in (1, 2):
                run = ["worker.cli.main", "run", "--threads", "4", "--instance", str(instance)]
                procs.append(_spawn(logs, f"worker-{instance}", run, env))
            jobs = _watch(client, console, timeout, procs, logs, describe)
            summary = _summary(client, jobs, plays, refused, time.monotonic() - started)
        _print_summary(console, summary, logs, settings.database_url)
        if dashboard:  # `worker demo --dashboard`: up, with one-time credentials, until Ctrl-C
            from worker.dashboard.demo import serve_until_interrupted

            serve_until_interrupted(console, env, logs, procs)
        return summary
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _watch(
    client: Client,
    console: Console,
    timeout: float,
    procs: list[subprocess.Popen[bytes]],
    logs: Path,
    describe: Mapping[str, Callable[[Mapping[str, Any]], str]],
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                tails = [f.read_text()[-2000:] for f in sorted(logs.glob("*.log"))]
                raise RuntimeError("a demo process exited early:\n" + "\n".join(tails))
            jobs = list(reversed(client.jobs(limit=100)))
            live.update(_progress_table(jobs, describe))
            if jobs and all(j["status"] in TERMINAL for j in jobs):
                # let the outbox deliver the failure messages
                time.sleep(1.0)
                return list(reversed(client.jobs(limit=100)))
            if time.monotonic() > deadline:
                return jobs
            time.sleep(0.25)


def _progress_table(
    jobs: list[dict[str, Any]], describe: Mapping[str, Callable[[Mapping[str, Any]], str]]
) -> Table:
    t = Table(title="jobs", title_justify="left", show_edge=False)
    for col in ("id", "user", "kind", "job", "model", "status", "step", "key", "credits", "error"):
        t.add_column(col)
    colours = {"succeeded": "green", "failed": "red", "running": "yellow"}
    for j in jobs:
        status = j["status"]
        t.add_row(
            str(j["id"]),
            str(j["user_id"]),
            j["kind"],
            escape(describe[j["kind"]](j["payload"])[:28]) if j["kind"] in describe else "",
            str(j.get("model") or ""),
            f"[{colours.get(status, 'white')}]{status}[/]",
            j["step"],
            j["key_name"] or "",
            j["credits"] or "",
            (j["error_class"] or ""),
        )
    return t


def _start_services(
    console: Console,
    settings: Settings,
    place: DemoPlace,
    port: int,
    sim_config: dict[str, Any],
    env: dict[str, str],
    logs: Path,
    procs: list[subprocess.Popen[bytes]],
    notes: str,
) -> None:
    """Steps 1 to 3: the simulator, a fresh demo database, `worker webhooks` (in ``procs``)."""
    console.print(f"[bold]1.[/bold] starting the simulator on {place.simulator_url}")
    config_file = logs / "simulator.json"
    config_file.write_text(json.dumps(sim_config))
    command = ["simulator", "--port", str(port), "--config", str(config_file)]
    procs.append(_spawn(logs, "simulator", command))
    _wait_http(f"{place.simulator_url}/_sim/health")

    console.print(
        "[bold]2.[/bold] resetting and migrating the demo database "
        f"({urlsplit(settings.database_url).path.lstrip('/')})"
    )
    _reset(settings)

    webhooks = urlsplit(place.webhook_url).netloc
    console.print(f"[bold]3.[/bold] starting `worker webhooks` on {webhooks}: {notes}")
    procs.append(_spawn(logs, "webhooks", ["worker.cli.main", "webhooks"], env))
    _wait_http(f"{place.webhook_url}/healthz")


def _spawn(
    logs: Path, name: str, module_args: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m <module_args>``, its output in ``<logs>/<name>.log``."""
    return subprocess.Popen(
        [sys.executable, "-m", *module_args],
        env=env,
        stdout=(logs / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _summary(
    client: Client,
    jobs: list[dict[str, Any]],
    plays: list[DemoScenario],
    refused: list[str],
    elapsed: float,
) -> dict[str, Any]:
    """What the demo did: jobs by outcome, the credits, the keys' states, the ledger check."""
    from worker import ledger

    users = [user for play in plays for user in play.users]
    balances = [client.balance(user).as_dict() for user in users]
    with client.db.transaction() as conn:
        ledger_ok = all(c.ok for c in ledger.check(conn))
    called_back = client.db.fetchone(
        "SELECT count(DISTINCT job_id) AS n FROM job_events WHERE event = 'callback'"
    )
    redis_client = redis.Redis.from_url(client.settings.redis_url)
    try:
        keys = KeyPool.from_settings(client.settings, redis_client).statuses()
    finally:
        redis_client.close()
    statuses = Counter(j["status"] for j in jobs)
    failed_by = Counter(j["error_class"] for j in jobs if j["status"] == "failed")
    return {
        "jobs": len(jobs),
        "succeeded": statuses.get("succeeded", 0),
        "failed": dict(failed_by),
        "unfinished": sum(1 for j in jobs if j["status"] not in TERMINAL),
        "refused_at_submit": refused,
        "credits_captured": sum(b["spent"] for b in balances),
        "credits_refunded": sum(b["refunded"] for b in balances),
        "credits_available": sum(b["available"] for b in balances),
        "keys": {k.name: (str(k.state), k.reason) for k in keys},
        "ledger_ok": ledger_ok,
        "called_back": int(called_back["n"]) if called_back else 0,
        # Which model made each job (the kinds that choose among models record it).
        "models": dict(Counter(str(j["model"]) for j in jobs if j.get("model"))),
        "notes": [row for play in plays if play.notes for row in play.notes(client, jobs)],
        "seconds": round(elapsed, 1),
    }


def _print_summary(console: Console, s: dict[str, Any], logs: Path, database_url: str) -> None:
    t = Table(title="summary", title_justify="left", show_header=False, show_edge=False)
    t.add_column(style="bold")
    t.add_column()
    failed = ", ".join(f"{n} {cls}" for cls, n in s["failed"].items()) or "none"
    t.add_row("jobs", f"{s['jobs']} ({s['unfinished']} unfinished)")
    t.add_row("succeeded", str(s["succeeded"]))
    t.add_row("failed by class", failed)
    t.add_row("refused at submit", escape("; ".join(s["refused_at_submit"])) or "none")
    t.add_row(
        "credits",
        f"{s['credits_captured']} captured, {s['credits_refunded']} refunded, "
        f"{s['credits_available']} left",
    )
    for name, (state, reason) in s["keys"].items():
        # a key's reason is a provider's text: printed as written, never read as markup
        t.add_row(f"key {name}", escape(state + (f" ({reason})" if reason else "")))
    models = ", ".join(f"{m} ({n})" for m, n in s.get("models", {}).items())
    t.add_row("models used", models or "none recorded")
    for label, text in s.get("notes", []):
        t.add_row(label, text)
    t.add_row("ledger check", "ok" if s["ledger_ok"] else "FAILED")
    t.add_row("callbacks", f"{s.get('called_back', 0)} job(s) woken by a provider's callback")
    t.add_row("time", f"{s['seconds']} s")
    t.add_row("logs", str(logs))
    console.print()
    console.print(t)
    console.print(f"\nInspect a job: DATABASE_URL={database_url} worker jobs show 1")
