"""The chaos harness: several `worker run` processes on a few hundred jobs while the simulator
injects every fault class, workers are SIGKILLed and stalled, and Redis and PostgreSQL restart.

KIE calls back for the tasks that most workers create (`worker webhooks` runs too, and is
killed and restarted once): callbacks are lost, duplicated and forged, so both ways of finding a
finished video, the callback and the poll, run under the same faults.

KIE pauses the default chain's first model for about 20 s mid-run (workers skip it for
`VIDEO_MODEL_PAUSE_SECONDS=5` at a time), so jobs fall through to the next model while workers
die, stall and restart around them.

It runs on a private PostgreSQL cluster and a private Redis (started here, on free ports), so
restarting them disturbs nothing else on the machine. Run it from pytest (tests/chaos) or alone:

    python -m tests.chaos.harness [--full] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from jobs.video.models import DEFAULT_CHAIN
from simulator.testing import RunningSimulator
from tests.pgbouncer import PgBouncer, pgbouncer_binary
from worker.client import Client
from worker.config import load_settings
from worker.db import Database
from worker.migrate import migrate


def _pg_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian layout)."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return versions[-1] / "bin"


TERMINAL = ("succeeded", "failed", "cancelled")
#: The product a KIE prompt is about, as the simulator's OpenAI writes it.
_PROMPT_SUBJECT = re.compile(r"hero shot of (.+?) centered in frame")
BOT_TOKEN = "777:chaos-telegram-token"
KIE_KEYS = {"kie-a": "chaos-kie-a", "kie-b": "chaos-kie-b", "kie-broke": "chaos-kie-broke"}
OPENAI_KEYS = {"oa-a": "chaos-openai-a", "oa-b": "chaos-openai-b"}
WEBHOOK_HMAC_KEY = "chaos-webhook-hmac-key"


@dataclass
class ChaosConfig:
    jobs: int = 150
    workers: int = 3
    threads: int = 4
    kills: int = 5
    stalls: int = 2
    restart_redis: bool = True
    restart_postgres: bool = True
    render_seconds: float = 2.0
    lease_seconds: float = 3.0
    timeout: float = 240.0  # below the test's own limit, so a stuck run reports what it saw
    seed: int = 7
    #: Workers whose index is not a multiple of 3 give KIE a callback URL; the others poll.
    callbacks: bool = True
    webhook_kills: int = 1
    #: The default chain's first model is paused at KIE mid-run, then resumed: jobs fall
    #: through to the next model without paying twice.
    model_pauses: int = 1
    #: Workers, `worker webhooks` and the bot reach PostgreSQL through a PgBouncer in
    #: transaction mode (when Debian's pgbouncer is installed); its server restarts behind it.
    pgbouncer: bool = field(default_factory=lambda: pgbouncer_binary() is not None)

    @classmethod
    def full(cls) -> ChaosConfig:
        return cls(jobs=400, workers=4, kills=12, stalls=4, timeout=600.0)


@dataclass
class ChaosReport:
    jobs: int = 0
    succeeded: int = 0
    failed_by_class: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    kills: int = 0
    stalls: int = 0
    redis_restarts: int = 0
    postgres_restarts: int = 0
    rescues: int = 0
    redispatches: int = 0
    paid_creates: int = 0
    failed_generations: int = 0
    unknown_outcome_creates: int = 0
    #: Of those, jobs whose worker died or stalled in the middle of a createTask.
    cut_off_creates: int = 0
    duplicate_creates: int = 0
    jobs_paid_twice: list[int] = field(default_factory=list)
    unattributed_tasks: int = 0
    orphaned_events: int = 0
    videos_missing: list[int] = field(default_factory=list)
    videos_twice: list[int] = field(default_factory=list)
    failure_messages_missing: list[int] = field(default_factory=list)
    failure_messages_twice: list[int] = field(default_factory=list)
    ambiguous_sends: int = 0
    ledger_ok: bool = False
    ledger_checks: list[dict[str, Any]] = field(default_factory=list)
    recovery_seconds_max: float = 0.0
    recovery_seconds_median: float = 0.0
    seconds: float = 0.0
    #: Callbacks the simulator sent (duplicates and forgeries included), and jobs one woke.
    callbacks_sent: int = 0
    callbacks_woke: int = 0
    webhook_kills: int = 0
    model_pauses: int = 0
    model_resumes: int = 0
    #: Jobs that fell through from the paused model to the next one, and the create calls the
    #: paused model answered "paused" (what the pause cost in calls, all workers together).
    fallbacks: int = 0
    paused_creates: int = 0
    events: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary folder (initdb runs as the postgres user)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/chaos"

    def _as_postgres(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        if not self.data.exists():
            subprocess.run(
                self._as_postgres(
                    str(_pg_bin() / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ),
                check=True,
                capture_output=True,
            )
        self._ctl("start")

    def _ctl(self, action: str, mode: str = "fast") -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            self._as_postgres(
                str(_pg_bin() / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-m",
                mode,
                "-l",
                str(self.root / "pg.log"),
                "-w",
                action,
            ),
            check=True,
            capture_output=True,
        )

    def restart(self) -> None:
        self._ctl("restart", mode="immediate")  # a crash, then recovery from the WAL

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("stop", mode="immediate")


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def restart(self) -> None:
        """Kill -9 and start empty: every queued message and all key state is lost."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class ChaosRun:
    def __init__(self, cfg: ChaosConfig, workdir: Path) -> None:
        self.cfg = cfg
        self.dir = workdir
        workdir.chmod(0o755)  # initdb runs as the postgres user and must reach its folder
        self.rng = random.Random(cfg.seed)
        self.pg = PrivatePostgres(workdir / "pg")
        self.bouncer: PgBouncer | None = None
        self.redis = PrivateRedis(workdir / "redis")
        self.sim_port = free_port()
        self.sim_proc: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.webhooks: subprocess.Popen[bytes] | None = None
        self.webhook_port = free_port()
        self.kill_log: list[tuple[float, int]] = []
        self.report = ChaosReport()

    # -- set-up ------------------------------------------------------------------------------

    def values(self) -> dict[str, str]:
        """The workers' configuration (environment variables)."""
        sim = f"http://127.0.0.1:{self.sim_port}"
        return {
            "DATABASE_URL": self.bouncer.url_for(self.pg.url) if self.bouncer else self.pg.url,
            "REDIS_URL": self.redis.url,
            "REDIS_NAMESPACE": "chaos",
            "KIE_API_KEYS": ",".join(f"{k}={v}" for k, v in KIE_KEYS.items()),
            "OPENAI_API_KEYS": ",".join(f"{k}={v}" for k, v in OPENAI_KEYS.items()),
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "KIE_BASE_URL": sim,
            "OPENAI_BASE_URL": f"{sim}/v1",
            "TELEGRAM_API_URL": sim,
            "RESULT_HOSTS": "127.0.0.1",  # the simulator's videos: http on loopback
            "RESULT_ALLOW_HTTP": "true",
            "STORAGE_DIR": str(self.dir / "storage"),
            "KIE_TIMEOUT": "2",
            "OPENAI_TIMEOUT": "2",
            "TELEGRAM_TIMEOUT": "3",
            "LEASE_SECONDS": str(self.cfg.lease_seconds),
            "MAINTENANCE_INTERVAL_SECONDS": "0.5",
            "REDISPATCH_AFTER_SECONDS": "3",
            "BACKOFF_BASE_SECONDS": "0.3",
            "BACKOFF_MAX_SECONDS": "2",
            "MAX_RESCUES": "8",
            "VIDEO_DEADLINE_SECONDS": str(self.cfg.timeout),
            "PROGRESS_AFTER_SECONDS": "3600",
            "DRAIN_SECONDS": "5",
            "DB_POOL_MAX": "3",  # the default: threads wait for one of 3 connections
            "WEBHOOK_PORT": str(self.webhook_port),
            "KIE_WEBHOOK_HMAC_KEY": WEBHOOK_HMAC_KEY,
            # A paused model is skipped this long by every worker, then tried again.
            "VIDEO_MODEL_PAUSE_SECONDS": "5",
        }

    def env(self) -> dict[str, str]:
        ours = ("KIE_", "OPENAI_", "TELEGRAM_", "SENTRY", "METRICS_PORT")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        return {**env, **self.values()}

    def sim_config(self) -> dict[str, Any]:
        return {
            "seed": self.cfg.seed,
            "kie": {
                "render_seconds": self.cfg.render_seconds,
                "render_jitter": 1.0,
                "keys": {
                    KIE_KEYS["kie-a"]: {"credits": None},
                    KIE_KEYS["kie-b"]: {"credits": None},
                    KIE_KEYS["kie-broke"]: {"credits": 0},
                },
                "rate_5xx": 0.04,
                "rate_429": 0.05,
                "rate_maintenance": 0.03,
                "rate_timeout": 0.01,
                "timeout_seconds": 3.0,
                "rate_malformed": 0.02,
                "rate_generation_fail": 0.05,
                "rate_malformed_result": 0.03,
                "callbacks": self.cfg.callbacks,
                "webhook_hmac_key": WEBHOOK_HMAC_KEY,
                "rate_callback_lost": 0.1,
                "rate_callback_duplicate": 0.3,
                "rate_callback_bad_signature": 0.05,
                "callback_retries": 3,
            },
            "openai": {
                "rate_5xx": 0.04,
                "rate_429": 0.04,
                "rate_timeout": 0.01,
                "timeout_seconds": 3.0,
                "retry_after_seconds": 0.5,
            },
            "telegram": {
                "bot_token": BOT_TOKEN,
                "rate_429": 0.04,
                "rate_5xx": 0.03,
                "retry_after_seconds": 1,
                "blocked_chats": [900_003, 900_017],
            },
        }

    def start_worker(self, index: int) -> subprocess.Popen[bytes]:
        log = (self.dir / f"worker-{index}.log").open("ab")
        env = self.env()
        if self.cfg.callbacks and index % 3:
            env["KIE_CALLBACK_URL"] = f"http://127.0.0.1:{self.webhook_port}/callbacks/video/kie"
            env["KIE_SAFETY_POLL_SECONDS"] = "3"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli.main",
                "run",
                "--threads",
                str(self.cfg.threads),
                "--instance",
                str(index),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return proc

    def start_webhooks(self) -> subprocess.Popen[bytes]:
        """`worker webhooks` on its fixed port (a restart keeps the URL tasks were given)."""
        log = (self.dir / "webhooks.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli.main", "webhooks"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        started = time.monotonic()
        self.pg.start()
        self.redis.start()
        try:
            if self.cfg.pgbouncer:
                self.bouncer = PgBouncer(self.pg.url, pool_size=20, root=self.dir / "pgbouncer")
                self.bouncer.start()
                self.report.events.append(f"through PgBouncer on port {self.bouncer.port}")
            migrate(self.pg.url)
            self._start_simulator()
            if self.cfg.callbacks:
                self.webhooks = self.start_webhooks()
            self.workers = [self.start_worker(i) for i in range(self.cfg.workers)]
            values = self.values()
            settings = load_settings(_env_file=None, **{k.lower(): v for k, v in values.items()})
            db = Database(settings.database_url, min_size=1, max_size=4).open()
            client = Client(settings, db=db)
            job_ids = self._submit(client, self.cfg.jobs // 2, offset=0)
            actions = self._plan()
            t0 = time.monotonic()
            submitted_rest = False
            last_status = 0.0
            while actions or not self._all_done(db, job_ids):
                now = time.monotonic() - t0
                if not submitted_rest and now > 4:
                    job_ids += self._submit(
                        client, self.cfg.jobs - len(job_ids), offset=len(job_ids)
                    )
                    submitted_rest = True
                while actions and actions[0][0] <= now:
                    self._act(actions.pop(0)[1])
                if now - last_status > 10:
                    last_status = now
                    print(f"chaos t+{now:.0f}s: {self._status(db, job_ids)}", file=sys.stderr)
                if time.monotonic() - started > self.cfg.timeout:
                    self.report.events.append("timed out waiting for the jobs")
                    break
                time.sleep(0.25)
            time.sleep(1.5)  # let the outbox settle
            self._collect(db, job_ids)
            client.close()
            db.close()
        finally:
            if self.webhooks is not None and self.webhooks.poll() is None:
                self.webhooks.terminate()
                self.webhooks.wait(20)
            for w in self.workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGCONT)
                    w.send_signal(signal.SIGTERM)
            for w in self.workers:
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    w.kill()
            if self.sim_proc:
                self.sim_proc.terminate()
                self.sim_proc.wait(10)
            if self.bouncer is not None:
                self.bouncer.stop()
            self.redis.stop()
            self.pg.stop()
        self.report.seconds = round(time.monotonic() - started, 1)
        return self.report

    def _start_simulator(self) -> None:
        config = self.dir / "sim.json"
        config.write_text(json.dumps(self.sim_config()))
        self.sim_proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator",
                "--port",
                str(self.sim_port),
                "--config",
                str(config),
            ],
            stdout=(self.dir / "sim.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.sim = RunningSimulator.connect(f"http://127.0.0.1:{self.sim_port}", wait_seconds=15)

    def _submit(self, client: Client, n: int, offset: int) -> list[int]:
        ids = []
        for i in range(offset, offset + n):
            user = 1 + i % 25
            chat = 900_000 + i  # one chat per job: every message maps to exactly one job
            client.grant(user, 1, idempotency_key=f"chaos-{i}")
            title = "FORBIDDEN knock-off" if i % 23 == 5 else f"Chaos product {i}"
            res = client.submit_video(
                user_id=user,
                chat_id=chat,
                product={"title": title, "image_url": "https://example.test/p.jpg"},
            )
            ids += res.job_ids
        return ids

    def _plan(self) -> list[tuple[float, str]]:
        """When each chaos action happens, spread over the first minute or so."""
        actions: list[tuple[float, str]] = []
        span = 40.0
        actions += [(2 + self.rng.uniform(0, span), "kill") for _ in range(self.cfg.kills)]
        actions += [(3 + self.rng.uniform(0, span), "stall") for _ in range(self.cfg.stalls)]
        if self.cfg.restart_redis:
            actions.append((self.rng.uniform(8, 20), "restart-redis"))
        if self.cfg.restart_postgres:
            actions.append((self.rng.uniform(20, 32), "restart-postgres"))
        if self.cfg.callbacks:
            kills = self.cfg.webhook_kills
            actions += [(3 + self.rng.uniform(0, span), "kill-webhooks") for _ in range(kills)]
        for _ in range(self.cfg.model_pauses):
            paused_at = self.rng.uniform(4, 12)
            actions += [(paused_at, "pause-model"), (paused_at + 20, "resume-model")]
        return sorted(actions)

    def _act(self, action: str) -> None:
        stamp = time.monotonic()
        if action == "kill":
            i = self.rng.randrange(len(self.workers))
            victim = self.workers[i]
            if victim.poll() is None:
                victim.send_signal(signal.SIGCONT)
                victim.kill()
                victim.wait(10)
                self.kill_log.append((time.time(), victim.pid))
                self.report.kills += 1
            self.workers[i] = self.start_worker(100 + len(self.kill_log))
            self.report.events.append(f"{stamp:.1f} SIGKILL worker pid {victim.pid}")
        elif action == "stall":
            victim = self.rng.choice([w for w in self.workers if w.poll() is None])
            victim.send_signal(signal.SIGSTOP)
            time.sleep(self.cfg.lease_seconds * 2 + 1)  # past its lease: its jobs get rescued
            victim.send_signal(signal.SIGCONT)
            self.report.stalls += 1
            self.report.events.append(f"{stamp:.1f} SIGSTOP/SIGCONT worker pid {victim.pid}")
        elif action == "kill-webhooks":
            assert self.webhooks is not None
            victim = self.webhooks
            victim.kill()
            victim.wait(10)
            time.sleep(1.0)  # callbacks meanwhile find nobody (the simulator retries some)
            self.webhooks = self.start_webhooks()
            self.report.webhook_kills += 1
            self.report.events.append(f"{stamp:.1f} SIGKILL worker webhooks pid {victim.pid}")
        elif action in ("pause-model", "resume-model"):
            model = DEFAULT_CHAIN[0]
            if action == "pause-model":
                self.sim.pause_model(model)
                self.report.model_pauses += 1
            else:
                self.sim.resume_model(model)
                self.report.model_resumes += 1
            self.report.events.append(f"{stamp:.1f} KIE {action.split('-')[0]}d {model}")
        elif action == "restart-redis":
            self.redis.restart()
            self.report.redis_restarts += 1
            self.report.events.append(f"{stamp:.1f} Redis restarted empty")
        elif action == "restart-postgres":
            self.pg.restart()
            self.report.postgres_restarts += 1
            self.report.events.append(f"{stamp:.1f} PostgreSQL crashed and recovered")

    def _status(self, db: Database, job_ids: list[int]) -> str:
        try:
            rows = db.fetchall(
                "SELECT status, step, count(*) AS n FROM jobs WHERE id = ANY(%s)"
                " GROUP BY status, step ORDER BY status, step",
                (job_ids,),
            )
            outbox = db.fetchall(
                "SELECT status, count(*) AS n FROM notifications GROUP BY status ORDER BY status"
            )
        except psycopg.Error as exc:
            return f"database unavailable ({type(exc).__name__})"
        jobs = ", ".join(f"{r['status']}/{r['step']}={r['n']}" for r in rows)
        notes = ", ".join(f"{r['status']}={r['n']}" for r in outbox)
        return f"jobs {jobs}; outbox {notes}"

    def _all_done(self, db: Database, job_ids: list[int]) -> bool:
        try:
            row = db.fetchone(
                "SELECT count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed', 'cancelled')) AS active,"
                " (SELECT count(*) FROM notifications WHERE status IN ('pending', 'retry')) AS outbox"
                " FROM jobs WHERE id = ANY(%s)",
                (job_ids,),
            )
        except psycopg.Error:
            return False
        return (
            bool(row)
            and row["active"] == 0
            and row["outbox"] == 0
            and len(job_ids) >= self.cfg.jobs
        )

    # -- the verdict -------------------------------------------------------------------------

    def _collect(self, db: Database, job_ids: list[int]) -> None:
        r = self.report
        jobs = db.fetchall("SELECT * FROM jobs WHERE id = ANY(%s) ORDER BY id", (job_ids,))
        notes = {(n["job_id"], n["kind"]): n for n in db.fetchall("SELECT * FROM notifications")}
        events = db.fetchall("SELECT job_id, at, event, detail FROM job_events ORDER BY id")
        r.jobs = len(jobs)
        r.succeeded = sum(1 for j in jobs if j["status"] == "succeeded")
        r.failed_by_class = dict(Counter(j["error_class"] for j in jobs if j["status"] == "failed"))
        r.unfinished = sum(1 for j in jobs if j["status"] not in TERMINAL)
        r.rescues = sum(1 for e in events if e["event"] == "rescued")
        r.redispatches = sum(1 for e in events if e["event"] == "redispatched")
        r.orphaned_events = sum(1 for e in events if e["event"] == "orphaned task")
        r.unknown_outcome_creates = sum(1 for j in jobs if "outcome unknown" in (j["error"] or ""))
        r.cut_off_creates = sum(1 for j in jobs if "died or stalled" in (j["error"] or ""))
        r.callbacks_woke = len({e["job_id"] for e in events if e["event"] == "callback"})
        r.callbacks_sent = int(self.sim.stats()["callbacks"]["attempts"])
        r.fallbacks = len({e["job_id"] for e in events if e["event"] == "model unavailable"})
        r.paused_creates = sum(
            1
            for c in self.sim.calls_for_model(DEFAULT_CHAIN[0], endpoint="createTask")
            if c["code"] == 500
        )

        r.failed_generations = sum(len(j["state"].get("failed_tasks", [])) for j in jobs)
        tasks = self.sim.tasks()
        r.paid_creates = int(self.sim.stats()["paid_creates"])
        # Every paid creation, recorded or not, belongs to the job whose product its prompt
        # names. A job may pay once per generation: its failed ones plus the last.
        by_title = {j["payload"]["title"]: j["id"] for j in jobs}
        creations: Counter[int] = Counter()
        for t in tasks:
            named = _PROMPT_SUBJECT.search(t["prompt"] or "")
            job_id = by_title.get(named.group(1)) if named else None
            if job_id is None:
                r.unattributed_tasks += 1
            else:
                creations[job_id] += 1
        for j in jobs:
            extra = creations[j["id"]] - (len(j["state"].get("failed_tasks", [])) + 1)
            if extra > 0:
                r.jobs_paid_twice.append(j["id"])
                r.duplicate_creates += extra

        by_chat: dict[int, Counter[str]] = {}
        for m in self.sim.messages():
            by_chat.setdefault(int(m["chat_id"]), Counter())[m["method"]] += 1
        for j in jobs:
            seen = by_chat.get(int(j["chat_id"]), Counter())
            kind = "result" if j["status"] == "succeeded" else "failure"
            note = notes.get((j["id"], kind))
            ambiguous = note is not None and note["status"] == "sending"
            undeliverable = note is not None and note["status"] == "undeliverable"
            r.ambiguous_sends += int(ambiguous)
            sent = seen["sendVideo"] if kind == "result" else seen["sendMessage"]
            missing, twice = (
                (r.videos_missing, r.videos_twice)
                if kind == "result"
                else (r.failure_messages_missing, r.failure_messages_twice)
            )
            if j["status"] not in TERMINAL:
                continue
            if sent > 1:
                twice.append(j["id"])
            elif sent == 0 and not ambiguous and not undeliverable:
                missing.append(j["id"])

        proc = subprocess.run(
            [sys.executable, "-m", "worker.cli.main", "ledger", "check", "--json"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        check = json.loads(proc.stdout)
        r.ledger_ok = bool(check["ok"]) and proc.returncode == 0
        r.ledger_checks = check["checks"]

        recoveries = []
        for killed_at, pid in self.kill_log:
            for e in events:
                if e["event"] == "rescued" and f":{pid}:" in e["detail"]:
                    recoveries.append(e["at"].timestamp() - killed_at)
        if recoveries:
            recoveries.sort()
            r.recovery_seconds_max = round(max(recoveries), 1)
            r.recovery_seconds_median = round(recoveries[len(recoveries) // 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the chaos suite once and print its report.")
    parser.add_argument(
        "--full", action="store_true", help="the full run (more jobs, kills, stalls)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cfg = ChaosConfig.full() if args.full else ChaosConfig()
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    report = ChaosRun(cfg, workdir).run()
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        for key, value in asdict(report).items():
            if key != "ledger_checks":
                print(f"{key:>26}: {value}")
        print(f"{'logs':>26}: {workdir}")


if __name__ == "__main__":
    main()
