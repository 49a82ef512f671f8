"""Queries behind `worker jobs stats`, `worker doctor` and the metrics collector.

Every query here is meant to stay cheap on a large jobs table: active jobs are counted through
the partial indexes (``jobs_runnable``, ``jobs_leased``), a time window is turned into an id
boundary once (ids grow with ``created_at``) so the window's rows are a primary-key range, and
the timeline and the transfers of those jobs are read through ``job_events_job`` and
``transfers_job``. The only full scans are the all-time refund total and the exact all-time
status counts, which callers use with care (see :mod:`worker.stats`).
"""

# --- windows ----------------------------------------------------------------------------------

# The newest job created before the window: the window is then ``id > after_id``. Walks the
# primary key backwards from the newest job, so it reads about as many rows as the window holds.
WINDOW_BOUNDARY = """
SELECT now() - make_interval(secs => %(seconds)s) AS since,
       coalesce((SELECT id FROM jobs
                  WHERE created_at < now() - make_interval(secs => %(seconds)s)
                  ORDER BY id DESC LIMIT 1), 0) AS after_id"""

NOW = "SELECT now() AS now"

STATUS_IN_WINDOW = """
SELECT status, count(*) AS n FROM jobs WHERE id > %(after_id)s GROUP BY status"""

# The last error class of jobs in the window: final for failed jobs, the reason of the current
# retry or wait for active ones.
ERRORS_IN_WINDOW = """
SELECT error_class,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status IN ('queued', 'running')) AS active
  FROM jobs
 WHERE id > %(after_id)s AND error_class IS NOT NULL
 GROUP BY error_class"""

# Every classified failure the step runtime wrote to a timeline (retries, waits and final
# failures): their detail starts with "<CLASS> from <provider>" (ProviderError.__str__).
PROVIDER_ERRORS_IN_WINDOW = """
SELECT m[2] AS provider, m[1] AS error_class, count(*) AS n
  FROM (SELECT regexp_match(e.detail,
                 '^(USER_ERROR|TEMPORARY|RATE_LIMIT|BILLING|AUTH|UNAVAILABLE|INTERNAL) from ([A-Za-z0-9_.-]+)'
               ) AS m
          FROM job_events e
         WHERE e.job_id > %(after_id)s AND e.event = ANY(%(events)s::text[])) x
 WHERE m IS NOT NULL
 GROUP BY 1, 2
 ORDER BY 3 DESC, 1, 2"""

# What the providers charged for the jobs in the window, by kind, tier and resource (model),
# next to the credits sold for them: a kind records a task's cost in its state as
# ``spend = {resource, amount, unit}`` and the tier it sold in its payload. ``made`` counts the
# jobs that succeeded; ``sold`` is their price (a job refunded after the provider charged it
# costs without selling).
SPEND_IN_WINDOW = """
SELECT j.kind,
       coalesce(j.payload->>'tier', '-') AS tier,
       coalesce(j.state->'spend'->>'resource', '-') AS resource,
       coalesce(j.state->'spend'->>'unit', '') AS unit,
       count(*) AS paid,
       count(*) FILTER (WHERE j.status = 'succeeded') AS made,
       coalesce(sum((j.state->'spend'->>'amount')::numeric), 0)::float8 AS spent,
       coalesce(sum(j.price) FILTER (WHERE j.status = 'succeeded'), 0)::bigint AS sold
  FROM jobs j
 WHERE j.id > %(after_id)s AND j.state->'spend' IS NOT NULL
 GROUP BY 1, 2, 3, 4
 ORDER BY 1, 2, 3"""

# Holds of the jobs in the window and how they resolved.
CREDITS_IN_WINDOW = """
SELECT coalesce(sum(h.amount) FILTER (WHERE r.id IS NULL), 0)::bigint AS held,
       coalesce(sum(h.amount) FILTER (WHERE r.kind = 'post'), 0)::bigint AS captured,
       coalesce(sum(h.amount) FILTER (WHERE r.kind = 'void'), 0)::bigint AS refunded,
       count(*) FILTER (WHERE r.kind = 'void') AS refunds
  FROM transfers h
  LEFT JOIN transfers r ON r.pending_id = h.id
 WHERE h.kind = 'pending' AND h.job_id > %(after_id)s"""

# Step durations from the timeline. An interval between two consecutive events of a job belongs
# to the step that the later event ends; events that end a step are given per kind in
# (map_kinds, map_events, map_steps). Events that name no step (retry, wait, waiting for a key)
# belong to the next event that does, and those after the last one to the job's current step
# (where it still is, or where it ended). Events after the terminal one (late notification
# outcomes) are left out. Kinds without a map are measured as one step, '*'. Each job's time in
# a step is summed (retries and repeated generations included), then percentiles over jobs.
STEP_DURATIONS_IN_WINDOW = """
WITH map (kind, event, step) AS (
    SELECT * FROM unnest(%(map_kinds)s::text[], %(map_events)s::text[], %(map_steps)s::text[])
), ev AS (
    SELECT e.job_id, e.id, e.at, j.kind, m.step AS mapped,
           CASE WHEN j.kind = ANY(%(map_kinds)s::text[]) THEN j.step ELSE '*' END AS tail_step,
           lag(e.at) OVER (PARTITION BY e.job_id ORDER BY e.id) AS prev_at,
           min(e.id) FILTER (WHERE e.event = ANY(%(terminal)s::text[]))
               OVER (PARTITION BY e.job_id) AS end_id
      FROM job_events e
      JOIN jobs j ON j.id = e.job_id
      LEFT JOIN map m ON m.kind = j.kind AND m.event = e.event
     WHERE e.job_id > %(after_id)s
), grouped AS (
    SELECT *, count(mapped) OVER (PARTITION BY job_id ORDER BY id DESC) AS grp FROM ev
), attributed AS (
    SELECT job_id, kind, id, end_id, prev_at,
           coalesce(max(mapped) OVER (PARTITION BY job_id, grp), tail_step) AS step,
           extract(epoch FROM at - prev_at)::float8 AS seconds
      FROM grouped
), per_job AS (
    SELECT kind, step, job_id, sum(seconds) AS seconds
      FROM attributed
     WHERE prev_at IS NOT NULL AND (end_id IS NULL OR id <= end_id)
     GROUP BY kind, step, job_id
)
SELECT kind, step, count(*) AS jobs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95,
       max(seconds) AS max
  FROM per_job
 GROUP BY kind, step"""

# Submit to success, for jobs that succeeded.
END_TO_END_IN_WINDOW = """
SELECT kind, count(*) AS jobs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)::float8) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)::float8) AS p95,
       max(extract(epoch FROM finished_at - created_at))::float8 AS max
  FROM jobs
 WHERE id > %(after_id)s AND status = 'succeeded'
 GROUP BY kind"""

# --- all time ---------------------------------------------------------------------------------

# Through the partial indexes jobs_runnable and jobs_leased.
ACTIVE_COUNTS = """
SELECT (SELECT count(*) FROM jobs WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM jobs WHERE status = 'running') AS running"""

# The planner's view of the jobs table: row estimate and the status distribution (ANALYZE).
STATUS_ESTIMATE = """
SELECT c.reltuples::bigint AS rows,
       s.most_common_vals::text::text[] AS vals,
       s.most_common_freqs AS freqs
  FROM pg_class c
  LEFT JOIN pg_stats s ON s.schemaname = c.relnamespace::regnamespace::text
                      AND s.tablename = c.relname AND s.attname = 'status'
 WHERE c.oid = 'jobs'::regclass"""

STATUS_EXACT = "SELECT status, count(*) AS n FROM jobs GROUP BY status"

# The revenue account's counters: what is held right now and everything ever captured
# (holds are its only pending credits, their posts its only posted credits).
LEDGER_COUNTERS = """
SELECT credits_pending AS held, credits_posted AS captured
  FROM accounts WHERE code = 'system:revenue'"""

# Voids are not kept in any counter; this one scans the transfers.
REFUNDED_ALL_TIME = """
SELECT coalesce(sum(amount), 0)::bigint AS refunded, count(*) AS refunds
  FROM transfers WHERE kind = 'void'"""

# --- stuck jobs -------------------------------------------------------------------------------

STUCK = """
SELECT (SELECT count(*) FROM jobs
         WHERE status = 'queued' AND next_run_at < now() - make_interval(secs => %(grace)s))
           AS queued_overdue,
       (SELECT count(*) FROM jobs
         WHERE status = 'running' AND lease_expires_at < now()) AS lease_expired,
       (SELECT extract(epoch FROM now() - min(next_run_at))::float8 FROM jobs
         WHERE status = 'queued' AND next_run_at < now() - make_interval(secs => %(grace)s))
           AS oldest_overdue_seconds,
       ARRAY(SELECT id FROM (
                 (SELECT id FROM jobs
                   WHERE status = 'queued'
                     AND next_run_at < now() - make_interval(secs => %(grace)s)
                   ORDER BY next_run_at LIMIT %(examples)s)
                 UNION ALL
                 (SELECT id FROM jobs
                   WHERE status = 'running' AND lease_expires_at < now()
                   ORDER BY lease_expires_at LIMIT %(examples)s)) s
             ORDER BY id LIMIT %(examples)s) AS examples"""

# --- PostgreSQL server (doctor) ---------------------------------------------------------------

CONNECTION_LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce((SELECT setting::int FROM pg_settings WHERE name = 'reserved_connections'), 0)
           AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use,
       current_setting('server_version') AS version"""
