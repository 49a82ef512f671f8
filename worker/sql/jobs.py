"""Queries of the jobs table, its timeline and the submission requests."""

# --- submission -------------------------------------------------------------------------------

SUBMIT = """
SELECT submit_jobs(%(request_id)s, %(user_id)s, %(chat_id)s, %(kind)s, %(step)s, %(payload)s,
                   %(price)s, %(count)s, %(deadline_seconds)s, %(idempotency_key)s,
                   %(fingerprint)s, %(cloned_from)s, %(detail)s) AS answer"""

INSERT_EVENT = """
INSERT INTO job_events (job_id, code, event, detail, data)
VALUES (%(job_id)s, %(code)s, %(event)s, %(detail)s, %(data)s)"""

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
