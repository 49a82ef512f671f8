"""Queries that move a job through its lifecycle. Every write made under a claim is fenced:
it only applies while the job is still ``running`` under the same claim token."""

CLAIM = """
UPDATE jobs
   SET status = 'running', lease_owner = %(owner)s,
       lease_expires_at = now() + make_interval(secs => %(lease)s),
       claims = claims + 1, started_at = coalesce(started_at, now()), updated_at = now()
 WHERE id = %(id)s AND status = 'queued' AND step = %(step)s
   AND next_run_at <= now() + make_interval(secs => %(early)s)
RETURNING *, now() AS db_now"""

HEARTBEAT_MANY = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
 WHERE (id, claims) IN (SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]))
   AND status = 'running'
RETURNING id"""

RECORD = """
WITH kept AS (
UPDATE jobs
   SET provider_task_id = coalesce(%(provider_task_id)s, provider_task_id),
       key_name = coalesce(%(key_name)s, key_name),
       state = state || %(state)s, updated_at = now()
 WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
RETURNING id
), event AS (
    INSERT INTO job_events (job_id, code, event, detail, data)
    SELECT id, %(code)s, %(event)s, %(detail)s, '{}' FROM kept WHERE %(event)s::text IS NOT NULL
)
SELECT id FROM kept"""

RESCHEDULE = """
WITH moved AS (
UPDATE jobs
   SET status = 'queued', step = %(step)s, attempts = %(attempts)s,
       next_run_at = now() + make_interval(secs => %(delay)s), dispatched_at = now(),
       lease_owner = NULL, lease_expires_at = NULL,
       state = state || %(state)s,
       provider_task_id = CASE WHEN %(clear_task)s THEN NULL
                               ELSE coalesce(%(provider_task_id)s, provider_task_id) END,
       key_name = CASE WHEN %(clear_task)s THEN NULL ELSE coalesce(%(key_name)s, key_name) END,
       error_class = coalesce(%(error_class)s, error_class),
       error = coalesce(%(error)s, error),
       updated_at = now()
 WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
RETURNING id, next_run_at, now() AS db_now
), event AS (
    INSERT INTO job_events (job_id, code, event, detail, data)
    SELECT id, %(code)s, %(event)s, %(detail)s, '{}' FROM moved WHERE %(event)s::text IS NOT NULL
)
SELECT * FROM moved"""

# Go straight on to the next step under a fresh claim (a Next with no delay, run by the same
# worker thread): the move, its event and the new fencing token in one statement, with no
# wake-up message in between. The job stays ``running``; the old token stops working.
ADVANCE = """
WITH moved AS (
UPDATE jobs
   SET step = %(step)s, attempts = 0, claims = claims + 1, lease_owner = %(owner)s,
       lease_expires_at = now() + make_interval(secs => %(lease)s),
       next_run_at = now(), state = state || %(state)s,
       provider_task_id = CASE WHEN %(clear_task)s THEN NULL
                               ELSE coalesce(%(provider_task_id)s, provider_task_id) END,
       key_name = CASE WHEN %(clear_task)s THEN NULL ELSE coalesce(%(key_name)s, key_name) END,
       updated_at = now()
 WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
RETURNING *, now() AS db_now
), event AS (
    INSERT INTO job_events (job_id, code, event, detail, data)
    SELECT id, %(code)s, %(event)s, %(detail)s, '{}' FROM moved WHERE %(event)s::text IS NOT NULL
)
SELECT * FROM moved"""

# The one way a job ends (migrations/0005, 0008): with a claim token (a step) or without (the
# maintenance loop, a cancel). The CTE marks a message the step itself sent just before
# (``sent_kind``; null: none) in the same statement; it stands even if the claim was lost, since
# the message went out either way. ``request_message`` names a message about the whole request
# that this end queued (``summary``: the job was the last of its request), null if none.
END = """
WITH marked AS (
UPDATE notifications
   SET status = 'sent', message_id = %(sent_message_id)s, detail = %(sent_detail)s,
       updated_at = now(), next_attempt_at = now()
 WHERE job_id = %(id)s AND kind = %(sent_kind)s AND status = 'sending'
RETURNING job_id
)
SELECT ended.done, ended.request_message
  FROM end_job(%(id)s, %(claims)s, %(force)s, %(status)s, %(state)s, %(result)s,
               %(error_class)s, %(error)s, %(user_error)s, %(code)s, %(event)s, %(detail)s,
               %(data)s, %(notify_kind)s, %(notify_text)s) AS ended"""

TASK_OF = """
SELECT provider_task_id FROM jobs WHERE id = %(id)s"""
