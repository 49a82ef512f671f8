"""What the dashboard's pages cost PostgreSQL on a table of a million jobs.

    python -m benchmarks.dashboard [--jobs 1000000] [--repeat 15]

Builds a scratch database (migrated, removed afterwards) holding ``--jobs`` jobs made over 30
days by 20,000 users: 90 % succeeded, 6 % failed (every error class), 2.5 % cancelled, the rest
queued or running; each with its hold and its capture or refund in the ledger, three timeline
events, a result message, a model, a tier, a key and a provider spend record. The rows are
written in bulk with triggers off (``session_replication_role = replica``), then the account
counters are set from the transfers as the triggers would have, and the tables analysed.

Then it runs every statement each page runs, ``--repeat`` times, and reports the median and the
slowest time per statement and per page (one page view runs them all once), through the same
functions the pages call. The JSON on standard output is what docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from benchmarks.common import Progress, print_json, quiet, scratch_settings
from worker import stats
from worker.dashboard import queries as dq
from worker.db import Connection, Database
from worker.sql import dashboard as q
from worker.sql import jobs as jobs_q

USERS = 20_000
DAYS = 30
MODELS = ["bytedance/seedance-2-mini", "kling-2.6/image-to-video", "wan/2-6-image-to-video"]
TIERS = ["standard", "premium"]
KEYS = ["k1", "k2", "k3", "k4"]

# One statement per table, in bulk, with triggers (and so foreign-key checks) off, but for the
# timeline's (its insert trigger completes each event as the application's inserts are).
_FILL = [
    (
        "accounts",
        """
INSERT INTO accounts (code, user_id, no_overdraft)
SELECT 'user:' || u, u, true FROM generate_series(1, %(users)s) u""",
    ),
    (
        "grants",
        """
INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, reason, created_at)
SELECT gen_random_uuid(), 'single', (SELECT id FROM accounts WHERE code = 'system:issuance'),
       a.id, 1000, 'grant', now() - interval '31 days'
  FROM accounts a WHERE a.user_id IS NOT NULL""",
    ),
    (
        "requests",
        """
INSERT INTO requests (id, user_id, kind, fingerprint, response, created_at)
SELECT md5('r' || i)::uuid, 1 + (i * 7919) %% %(users)s, 'video', md5(i::text), '{}',
       now() - make_interval(secs => %(span)s * (1 - i::float8 / %(jobs)s))
  FROM generate_series(1::bigint, %(jobs)s) i""",
    ),
    (
        "jobs",
        """
INSERT INTO jobs (kind, request_id, user_id, chat_id, status, step, attempts, payload, state,
                  price, deadline_at, next_run_at, lease_owner, lease_expires_at,
                  provider_task_id, key_name, error_class, error, result, created_at,
                  updated_at, started_at, finished_at)
SELECT 'video', md5('r' || i)::uuid, u, u, st,
       CASE WHEN st = 'succeeded' THEN 'deliver' WHEN st = 'queued' THEN 'prompt' ELSE 'poll' END,
       0,
       jsonb_build_object('title', 'Mug ' || i, 'image_url', 'https://example.test/m.jpg',
                          'tier', (ARRAY['standard', 'premium'])[1 + i %% 2]),
       jsonb_build_object('model', (ARRAY['bytedance/seedance-2-mini', 'kling-2.6/image-to-video',
                                          'wan/2-6-image-to-video'])[1 + i %% 3],
                          'spend', jsonb_build_object('provider', 'kie', 'amount', 40 + i %% 30,
                                                      'unit', 'KIE credits')),
       1, t + interval '30 minutes', t,
       CASE WHEN st = 'running' THEN 'bench-worker' END,
       CASE WHEN st = 'running' THEN now() + interval '1 minute' END,
       'task_' || i, (ARRAY['k1', 'k2', 'k3', 'k4'])[1 + i %% 4],
       CASE WHEN st = 'failed' THEN (ARRAY['USER_ERROR', 'TEMPORARY', 'RATE_LIMIT', 'BILLING',
                                           'AUTH', 'UNAVAILABLE', 'INTERNAL'])[1 + i %% 7] END,
       CASE WHEN st = 'failed' THEN 'generation failed' END,
       CASE WHEN st = 'succeeded' THEN 'video/' || i || '.mp4' END,
       t, t + interval '40 seconds', t + interval '1 second',
       CASE WHEN st IN ('succeeded', 'failed', 'cancelled') THEN t + interval '40 seconds' END
  FROM (SELECT i, 1 + (i * 7919) %% %(users)s AS u,
               now() - make_interval(secs => %(span)s * (1 - i::float8 / %(jobs)s)) AS t,
               CASE WHEN i > %(jobs)s - 200 THEN (ARRAY['queued', 'running'])[1 + i %% 2]
                    WHEN i %% 1000 < 900 THEN 'succeeded'
                    WHEN i %% 1000 < 960 THEN 'failed'
                    WHEN i %% 1000 < 985 THEN 'cancelled'
                    ELSE 'succeeded' END AS st
          FROM generate_series(1::bigint, %(jobs)s) i) g""",
    ),
    (
        "holds",
        """
INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, job_id, reason,
                       created_at)
SELECT job_transfer_id(j.id, 1), 'pending', a.id,
       (SELECT id FROM accounts WHERE code = 'system:revenue'), j.price, j.id, 'hold',
       j.created_at
  FROM jobs j JOIN accounts a ON a.user_id = j.user_id""",
    ),
    (
        "captures and refunds",
        """
INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, pending_id,
                       job_id, reason, created_at)
SELECT job_transfer_id(j.id, CASE WHEN j.status = 'succeeded' THEN 2 ELSE 3 END),
       CASE WHEN j.status = 'succeeded' THEN 'post' ELSE 'void' END,
       h.debit_account_id, h.credit_account_id, h.amount, h.id, j.id,
       CASE WHEN j.status = 'succeeded' THEN 'capture' ELSE 'refund' END, j.finished_at
  FROM jobs j JOIN transfers h ON h.job_id = j.id AND h.kind = 'pending'
 WHERE j.finished_at IS NOT NULL""",
    ),
    (
        "events",
        """
INSERT INTO job_events (job_id, at, event, detail)
SELECT j.id, j.created_at + make_interval(secs => e.n * 10), e.event, e.event || ' (bench)'
  FROM jobs j
  CROSS JOIN LATERAL (VALUES (0, 'submitted'), (1, 'task created'),
                             (2, CASE WHEN j.finished_at IS NULL THEN 'retry' ELSE j.status END))
       AS e (n, event)""",
    ),
    (
        "notifications",
        """
INSERT INTO notifications (job_id, kind, chat_id, status, outbox, message_id, created_at,
                           updated_at)
SELECT id, CASE WHEN status = 'succeeded' THEN 'result' ELSE 'failure' END, chat_id, 'sent',
       status <> 'succeeded', id, finished_at, finished_at
  FROM jobs WHERE finished_at IS NOT NULL""",
    ),
    (
        "account counters",
        """
UPDATE accounts a SET
    debits_pending = coalesce(s.dp, 0), debits_posted = coalesce(s.dpo, 0),
    credits_pending = coalesce(s.cp, 0), credits_posted = coalesce(s.cpo, 0)
  FROM (SELECT acc,
               sum(dp) AS dp, sum(dpo) AS dpo, sum(cp) AS cp, sum(cpo) AS cpo
          FROM (SELECT t.debit_account_id AS acc,
                       CASE WHEN t.kind = 'pending' AND r.id IS NULL THEN t.amount ELSE 0 END AS dp,
                       CASE WHEN t.kind = 'single' OR (t.kind = 'pending' AND r.kind = 'post')
                            THEN t.amount ELSE 0 END AS dpo, 0 AS cp, 0 AS cpo
                  FROM transfers t LEFT JOIN transfers r ON r.pending_id = t.id
                 WHERE t.kind IN ('single', 'pending')
                UNION ALL
                SELECT t.credit_account_id,
                       0, 0,
                       CASE WHEN t.kind = 'pending' AND r.id IS NULL THEN t.amount ELSE 0 END,
                       CASE WHEN t.kind = 'single' OR (t.kind = 'pending' AND r.kind = 'post')
                            THEN t.amount ELSE 0 END
                  FROM transfers t LEFT JOIN transfers r ON r.pending_id = t.id
                 WHERE t.kind IN ('single', 'pending')) x
         GROUP BY acc) s
 WHERE a.id = s.acc""",
    ),
]


def fill(db: Database, jobs: int, progress: Progress) -> dict[str, float]:
    """Write the rows; returns the seconds each bulk statement took."""
    took: dict[str, float] = {}
    params = {"jobs": jobs, "users": USERS, "span": DAYS * 86400}
    for name, sql in _FILL:
        progress(f"writing {name}")
        started = time.perf_counter()
        with db.transaction() as conn:
            if name != "events":  # the timeline's insert trigger fills in what a kind writes
                conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("SET LOCAL synchronous_commit = off")
            conn.execute(sql, params)
        took[name] = round(time.perf_counter() - started, 1)
    progress("analysing")
    with db.connection() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return took


def _time(run: Callable[[Connection], Any], db: Database, repeat: int) -> dict[str, float]:
    samples = []
    with db.connection() as conn:
        run(conn)  # warm the cache and the plans once
        for _ in range(repeat):
            started = time.perf_counter()
            with conn.transaction():
                run(conn)
            samples.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(samples), 2),
        "max_ms": round(max(samples), 2),
    }


def statements(conn: Connection) -> dict[str, Callable[[Connection], Any]]:
    """Every statement of every page, with parameters a support colleague would use."""
    one = conn.execute("SELECT max(id) AS id FROM jobs").fetchone()
    assert one is not None
    newest = int(one["id"])
    failed = conn.execute(
        "SELECT id, user_id, chat_id FROM jobs WHERE status = 'failed' AND id < %s "
        "ORDER BY id DESC LIMIT 1",
        (newest // 2,),
    ).fetchone()
    assert failed is not None
    job_id, user_id, chat_id = int(failed["id"]), int(failed["user_id"]), int(failed["chat_id"])
    ten_days = conn.execute("SELECT now() - interval '10 days' AS t").fetchone()
    assert ten_days is not None
    since = ten_days["t"]

    def page(**filters: Any) -> Callable[[Connection], Any]:
        before = filters.pop("before", None)
        flt = dq.JobFilter(**filters)
        return lambda c: dq.job_page(c, flt, before)

    def one_statement(sql: str, params: dict[str, Any]) -> Callable[[Connection], Any]:
        return lambda c: c.execute(sql, params).fetchall()

    return {
        # overview (live: PULSE every 2 s)
        "overview: whole page": dq.overview,
        "overview: pulse (every 2 s while open)": dq.pulse,
        "overview: last day (one pass)": lambda c: dq._window(c, 86_400),
        "overview: last hour (one pass)": lambda c: dq._window(c, 3_600),
        "overview: finished per hour, last day": lambda c: dq._series(c, 86_400, 3_600),
        "overview: stuck, active, ledger counters": lambda c: (
            stats.stuck_jobs(c),
            stats.active_counts(c),
            stats.ledger_totals(c, with_refunds=False),
        ),
        # jobs list
        "jobs: newest page, no filter": page(),
        "jobs: page 10,000 deep (keyset)": page(before=newest - 500_000),
        "jobs: status=failed": page(status="failed"),
        "jobs: status=queued": page(status="queued"),
        "jobs: user": page(user_id=user_id),
        "jobs: chat": page(chat_id=chat_id),
        "jobs: error_class=AUTH": page(error_class="AUTH"),
        "jobs: key=k3": page(key_name="k3"),
        "jobs: model (JSON field)": page(model="kling-2.6/image-to-video"),
        "jobs: tier (JSON field)": page(tier="premium"),
        "jobs: one hour, 10 days ago": page(
            created_from=since, created_to=since + timedelta(hours=1)
        ),
        "jobs: failed + AUTH + one day, 10 days ago": page(
            status="failed",
            error_class="AUTH",
            created_from=since,
            created_to=since + timedelta(days=1),
        ),
        "jobs: user + failed": page(user_id=user_id, status="failed"),
        # one job (live: JOB_PULSE every 2 s while open)
        "job: whole page": lambda c: dq.job_detail(c, job_id),
        "job: pulse (every 2 s while open)": lambda c: dq.job_pulse(c, job_id),
        "job: row (worker jobs show)": one_statement(jobs_q.JOB, {"id": job_id}),
        "job: timeline": one_statement(jobs_q.EVENTS, {"id": job_id}),
        "job: transfers": one_statement(q.JOB_TRANSFERS, {"id": job_id}),
        "job: messages": one_statement(q.JOB_NOTIFICATIONS, {"id": job_id}),
        "job: retries of it": one_statement(q.JOB_CLONES, {"id": job_id}),
        # bulk confirmation
        "bulk: failed AUTH jobs of one day": lambda c: dq.bulk_match(
            c,
            dq.JobFilter(
                status="failed",
                error_class="AUTH",
                created_from=since,
                created_to=since + timedelta(days=1),
            ),
            "retry",
        ),
        # a user
        "user: whole page": lambda c: (
            dq.user_detail(c, user_id),
            dq.job_page(c, dq.JobFilter(user_id=user_id), None, 20),
        ),
        "user: transfers": one_statement(q.USER_TRANSFERS, {"user_id": user_id, "limit": 100}),
        "user: jobs by status": one_statement(q.USER_STATUS, {"user_id": user_id}),
    }


def run(jobs: int, repeat: int, progress: Progress = quiet) -> dict[str, Any]:
    with scratch_settings("bench_dashboard") as settings:
        db = Database(settings.database_url, min_size=1, max_size=2, name="bench").open()
        try:
            started = time.perf_counter()
            fill_seconds = fill(db, jobs, progress)
            built = time.perf_counter() - started
            with db.connection() as conn:
                counts = conn.execute(
                    "SELECT (SELECT count(*) FROM jobs) AS jobs,"
                    " (SELECT count(*) FROM job_events) AS events,"
                    " (SELECT count(*) FROM transfers) AS transfers,"
                    " pg_size_pretty(pg_total_relation_size('jobs')) AS jobs_size"
                ).fetchone()
                work = statements(conn)
            timings = {}
            for name, fn in work.items():
                progress(f"timing {name}")
                timings[name] = _time(fn, db, repeat)
            return {
                "jobs": jobs,
                "rows": dict(counts or {}),
                "build_seconds": round(built, 1),
                "fill_seconds": fill_seconds,
                "repeat": repeat,
                "statements": timings,
            }
        finally:
            db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print_json(lambda progress: run(args.jobs, args.repeat, progress))


if __name__ == "__main__":
    main()
