"""Queries of the jobs table, its timeline and the submission requests."""

# --- submission -------------------------------------------------------------------------------

REQUEST_BY_KEY = """
SELECT * FROM requests WHERE user_id = %(user_id)s AND idempotency_key = %(idempotency_key)s"""

INSERT_REQUEST = """
INSERT INTO requests (id, user_id, kind, idempotency_key, fingerprint, response)
VALUES (%(id)s, %(user_id)s, %(kind)s, %(idempotency_key)s, %(fingerprint)s, %(response)s)
ON CONFLICT (user_id, idempotency_key) DO NOTHING
RETURNING id"""

INSERT_JOBS = """
INSERT INTO jobs (kind, request_id, user_id, chat_id, step, payload, price, deadline_at,
                  cloned_from, dispatched_at)
SELECT %(kind)s, %(request_id)s, %(user_id)s, %(chat_id)s, %(step)s, %(payload)s, %(price)s,
       now() + make_interval(secs => %(deadline_seconds)s), %(cloned_from)s, now()
FROM generate_series(1, %(count)s)
RETURNING id"""

JOB_IDS_OF_REQUEST = "SELECT id FROM jobs WHERE request_id = %(request_id)s ORDER BY id"

INSERT_EVENTS = """
INSERT INTO job_events (job_id, event, detail, data)
SELECT unnest(%(job_ids)s::bigint[]), %(event)s, %(detail)s, %(data)s"""

INSERT_EVENT = """
INSERT INTO job_events (job_id, event, detail, data)
VALUES (%(job_id)s, %(event)s, %(detail)s, %(data)s)"""

# --- reading ----------------------------------------------------------------------------------

_VIEW = """
SELECT j.*,
       CASE WHEN r.kind = 'post' THEN 'captured'
            WHEN r.kind = 'void' THEN 'refunded'
            WHEN h.id IS NOT NULL THEN 'held' END AS credits
FROM jobs j
LEFT JOIN transfers h ON h.job_id = j.id AND h.kind = 'pending'
LEFT JOIN transfers r ON r.pending_id = h.id"""

JOB = _VIEW + " WHERE j.id = %(id)s"

JOB_FOR_UPDATE = "SELECT * FROM jobs WHERE id = %(id)s FOR UPDATE"

LIST_JOBS = (
    _VIEW
    + """
WHERE (%(status)s::text IS NULL OR j.status = %(status)s)
  AND (%(user_id)s::bigint IS NULL OR j.user_id = %(user_id)s)
ORDER BY j.id DESC
LIMIT %(limit)s"""
)

EVENTS = "SELECT at, event, detail, data FROM job_events WHERE job_id = %(id)s ORDER BY id"

NOTIFICATIONS = "SELECT * FROM notifications WHERE job_id = %(id)s ORDER BY created_at"

# --- operator actions -------------------------------------------------------------------------

CANCEL_QUEUED = """
UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now(),
       error = %(reason)s, next_run_at = now()
WHERE id = %(id)s AND status = 'queued'
RETURNING id"""
