"""Queries of `worker dashboard`: named, parameterised, each bounded by an index or a window.

The jobs list is a keyset page: ``id < before`` in ``ORDER BY id DESC``, never an OFFSET, so
page 1,000 costs what page 1 costs. Each optional filter is ``(%(x)s IS NULL OR col = %(x)s)``:
PostgreSQL plans the statement with the values given (psycopg sends them with the query, not a
generic plan), so a filter on a user, a chat, an error class or a key walks its
``(column, id DESC)`` index (migrations/0001 and 0007), and a time range becomes an id range
first (:data:`ID_RANGE`: ids grow with ``created_at``).

The overview's windows reuse the id boundary of :mod:`worker.sql.stats` (the newest job created
before the window), so "the last day" is a primary-key range, not a scan.
"""

# --- live updates -----------------------------------------------------------------------------

# One small statement per tick, shared by every open overview: active jobs through the partial
# indexes, and the newest job and timeline event (the top of two primary keys).
PULSE = """
SELECT (SELECT count(*) FROM jobs WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM jobs WHERE status = 'running') AS running,
       (SELECT max(id) FROM jobs) AS last_job,
       (SELECT max(id) FROM job_events) AS last_event"""

# What changes on one job's page: its status and its newest timeline event.
JOB_PULSE = """
SELECT j.status, j.updated_at,
       (SELECT max(e.id) FROM job_events e WHERE e.job_id = j.id) AS last_event
  FROM jobs j WHERE j.id = %(id)s"""

# --- overview ---------------------------------------------------------------------------------

# Jobs created since the boundary, in one pass over the primary-key range: by status (with
# their credits), by status and last error class, and what providers charged for them where a
# kind records it in the job's state under the generic ``spend`` key (``{"provider", "amount",
# "unit"}``, which `worker jobs stats` reads too). ``grp`` tells the three groupings apart.
# Credits come from the jobs' prices by status: held while queued or running, captured when
# succeeded, refunded when failed or cancelled, which `worker ledger check` verifies against
# the transfers ("job status agrees with its hold"); a free job counts nothing.
WINDOW_SUMMARY = """
SELECT GROUPING(status, error_class, state->'spend'->>'provider', state->'spend'->>'unit') AS grp,
       status, error_class,
       state->'spend'->>'provider' AS provider, state->'spend'->>'unit' AS unit,
       count(*) AS n,
       coalesce(sum(price), 0)::bigint AS credits,
       count(*) FILTER (WHERE price > 0) AS paid,
       sum((state->'spend'->>'amount')::numeric)
           FILTER (WHERE jsonb_typeof(state->'spend'->'amount') = 'number') AS spent
  FROM jobs
 WHERE id > %(after_id)s
 GROUP BY GROUPING SETS ((status), (status, error_class),
                         (state->'spend'->>'provider', state->'spend'->>'unit'))"""

# Finished jobs per bucket (``bucket`` seconds wide) over the last ``seconds``, through the
# partial index jobs_finished: the throughput and failure charts.
FINISHED_SERIES = """
SELECT floor(extract(epoch FROM finished_at) / %(bucket)s)::bigint AS slot,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled
  FROM jobs
 WHERE finished_at IS NOT NULL AND finished_at > now() - make_interval(secs => %(seconds)s)
 GROUP BY 1"""

# The clock of the database, as a bucket number (the charts' right edge).
NOW_SLOT = "SELECT floor(extract(epoch FROM now()) / %(bucket)s)::bigint AS slot, now() AS now"

# --- the jobs list ----------------------------------------------------------------------------

# A time range as ids: the first job created at or after ``created_from`` and the last created
# before ``created_to`` (through jobs_created_at, migrations/0007).
ID_RANGE = """
SELECT (SELECT id FROM jobs WHERE created_at >= %(created_from)s
         ORDER BY created_at, id LIMIT 1) AS first_id,
       (SELECT id FROM jobs WHERE created_at < %(created_to)s
         ORDER BY created_at DESC, id DESC LIMIT 1) AS last_id"""

_FILTER = """
 WHERE (%(status)s::text IS NULL OR j.status = %(status)s)
   AND (%(kind)s::text IS NULL OR j.kind = %(kind)s)
   AND (%(user_id)s::bigint IS NULL OR j.user_id = %(user_id)s)
   AND (%(chat_id)s::bigint IS NULL OR j.chat_id = %(chat_id)s)
   AND (%(error_class)s::text IS NULL OR j.error_class = %(error_class)s)
   AND (%(key_name)s::text IS NULL OR j.key_name = %(key_name)s)
   AND (%(model)s::text IS NULL
        OR coalesce(j.state->>'model', j.payload->>'model') = %(model)s)
   AND (%(tier)s::text IS NULL OR j.payload->>'tier' = %(tier)s)
   AND (%(min_id)s::bigint IS NULL OR j.id >= %(min_id)s)
   AND (%(max_id)s::bigint IS NULL OR j.id <= %(max_id)s)"""

# One page of jobs, newest first, strictly older than ``before`` (the keyset).
JOB_PAGE = (
    """
SELECT j.id, j.kind, j.user_id, j.chat_id, j.status, j.step, j.attempts, j.price,
       j.error_class, j.error, j.key_name, j.created_at, j.finished_at,
       coalesce(j.state->>'model', j.payload->>'model') AS model, j.payload->>'tier' AS tier
  FROM jobs j"""
    + _FILTER
    + """
   AND (%(before)s::bigint IS NULL OR j.id < %(before)s)
 ORDER BY j.id DESC
 LIMIT %(limit)s"""
)

# What a bulk action would touch: the jobs the filter matches in ``statuses``, up to ``limit``
# + 1 (so the caller can tell "too many"), newest first, with the credits involved.
BULK_MATCH = (
    """
SELECT j.id, j.price
  FROM jobs j"""
    + _FILTER
    + """
   AND j.status = ANY(%(statuses)s::text[])
 ORDER BY j.id DESC
 LIMIT %(limit)s"""
)

# --- one job ----------------------------------------------------------------------------------

# Its transfers: the hold and what resolved it (through transfers_job).
JOB_TRANSFERS = """
SELECT t.id, t.kind, t.amount, t.reason, t.created_at, t.pending_id,
       d.code AS debit, c.code AS credit
  FROM transfers t
  JOIN accounts d ON d.id = t.debit_account_id
  JOIN accounts c ON c.id = t.credit_account_id
 WHERE t.job_id = %(id)s
 ORDER BY t.created_at, t.kind"""

# Its messages to the user and their state.
JOB_NOTIFICATIONS = """
SELECT kind, status, outbox, attempts, message_id, detail, created_at, updated_at
  FROM notifications WHERE job_id = %(id)s ORDER BY created_at, kind"""

# The retries made of it (jobs cloned from it).
JOB_CLONES = "SELECT id, status FROM jobs WHERE cloned_from = %(id)s ORDER BY id"

# An operator's action on the job's timeline.
OPERATOR_EVENT = """
INSERT INTO job_events (job_id, event, detail, data)
VALUES (%(job_id)s, %(event)s, %(detail)s, %(data)s)"""

# --- users ------------------------------------------------------------------------------------

# A user's transfers, newest first (through transfers_debit / transfers_credit), keyset on
# (created_at, id).
USER_TRANSFERS = """
SELECT t.id, t.kind, t.amount, t.reason, t.job_id, t.created_at,
       CASE WHEN t.debit_account_id = a.id THEN -t.amount ELSE t.amount END AS signed
  FROM accounts a
  JOIN transfers t ON t.debit_account_id = a.id OR t.credit_account_id = a.id
 WHERE a.user_id = %(user_id)s
 ORDER BY t.created_at DESC, t.id
 LIMIT %(limit)s"""

# The user's jobs by status, all time (through jobs_user).
USER_STATUS = """
SELECT status, count(*) AS n, coalesce(sum(price), 0)::bigint AS credits
  FROM jobs WHERE user_id = %(user_id)s GROUP BY status"""
