"""Queries of the maintenance loop (run by the one elected worker process)."""

# Queued jobs that are due for a while and were not dispatched recently: their message was
# probably lost (Redis restarted, or was down at submit). Sending again is harmless, but with a
# backlog the messages are not lost, only waiting: the caller limits each kind to the due jobs its
# Redis queue cannot account for (DUE_BY_KIND minus the ready messages).
REDISPATCH = """
UPDATE jobs SET dispatched_at = now()
 WHERE id IN (SELECT id FROM jobs
               WHERE status = 'queued' AND kind = %(kind)s
                 AND next_run_at < now() - make_interval(secs => %(after)s)
                 AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => %(after)s))
               ORDER BY next_run_at LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id, kind, step"""

# Queued jobs that are due now, by kind: each should have a message waiting in its queue.
DUE_BY_KIND = """
SELECT kind, count(*) AS due FROM jobs
 WHERE status = 'queued' AND next_run_at <= now()
 GROUP BY kind"""

# Running jobs whose lease expired: their worker died or stalled. Back to the queue, with the
# token taken back, so the next claim knows it follows a rescue of the same step.
RESCUE = """
WITH expired AS (
    SELECT id, lease_owner FROM jobs
     WHERE status = 'running' AND lease_expires_at < now() AND rescues < %(max_rescues)s
     ORDER BY lease_expires_at LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED)
UPDATE jobs j
   SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, rescues = rescues + 1,
       rescued_claim = j.claims, next_run_at = now(), dispatched_at = now(), updated_at = now()
  FROM expired e
 WHERE j.id = e.id
RETURNING j.id, j.kind, j.step, j.rescues, e.lease_owner"""

# Jobs that keep killing their workers (poison), or whose deadline passed while queued.
POISON = """
SELECT id FROM jobs
 WHERE status = 'running' AND lease_expires_at < now() AND rescues >= %(max_rescues)s
 LIMIT %(limit)s"""

PAST_DEADLINE = """
SELECT id FROM jobs
 WHERE status = 'queued' AND deadline_at < now()
 ORDER BY deadline_at LIMIT %(limit)s"""

JOB_FOR_FAILURE = (
    "SELECT id, kind, chat_id, price, payload, step, error_class, error, created_at, deadline_at"
    " FROM jobs WHERE id = %(id)s"
)

# Terminal jobs whose hold is still open (only a bug or a hand edit can cause it).
OPEN_HOLDS = """
SELECT j.id, j.status FROM jobs j
  JOIN transfers h ON h.job_id = j.id AND h.kind = 'pending'
  LEFT JOIN transfers r ON r.pending_id = h.id
 WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND r.id IS NULL
   AND j.finished_at > now() - interval '7 days'
 LIMIT %(limit)s"""
