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

HEARTBEAT = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
 WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
RETURNING id"""

HEARTBEAT_MANY = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
 WHERE (id, claims) IN (SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]))
   AND status = 'running'
RETURNING id"""

RECORD = """
UPDATE jobs
   SET provider_task_id = coalesce(%(provider_task_id)s, provider_task_id),
       key_name = coalesce(%(key_name)s, key_name),
       state = state || %(state)s, updated_at = now()
 WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
RETURNING id"""

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
    INSERT INTO job_events (job_id, event, detail, data)
    SELECT id, %(event)s, %(detail)s, '{}' FROM moved WHERE %(event)s::text IS NOT NULL
)
SELECT * FROM moved"""

FINISH = """
UPDATE jobs
   SET status = %(status)s, finished_at = now(), updated_at = now(),
       lease_owner = NULL, lease_expires_at = NULL,
       state = state || %(state)s,
       result = coalesce(%(result)s, result),
       error_class = %(error_class)s, error = %(error)s, user_error = %(user_error)s
 WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
RETURNING id"""

# Terminal transitions made without a claim (maintenance, deadline, operator): only from an
# active state, and never under a live lease unless the caller says so.
FINISH_UNCLAIMED = """
UPDATE jobs
   SET status = %(status)s, finished_at = now(), updated_at = now(),
       lease_owner = NULL, lease_expires_at = NULL,
       error_class = %(error_class)s, error = %(error)s, user_error = %(user_error)s,
       claims = claims + 1
 WHERE id = %(id)s AND status IN ('queued', 'running')
   AND (status = 'queued' OR %(force)s OR lease_expires_at < now())
RETURNING id"""

INSERT_EVENT = """
INSERT INTO job_events (job_id, event, detail, data)
VALUES (%(job_id)s, %(event)s, %(detail)s, %(data)s)"""
