"""Queries of the notification outbox: at most one message per job and kind."""

ENQUEUE = """
INSERT INTO notifications (job_id, kind, chat_id, status, text, outbox)
VALUES (%(job_id)s, %(kind)s, %(chat_id)s, 'pending', %(text)s, true)
ON CONFLICT (job_id, kind) DO NOTHING
RETURNING job_id"""

# A step claims the row of a message it sends itself (the result file), creating it the first
# time. Such rows are not in the outbox: only the step that owns them retries them. The claim is
# made under the job's claim token, with what the step learned (state and an event) in the same
# statement: once the job was taken over, nothing is written or claimed (no row returned). The
# notification columns are null when the message was not claimed (already sent, given up, or an
# earlier attempt may have sent it).
CLAIM = """
WITH kept AS (
UPDATE jobs SET state = state || %(state)s, updated_at = now()
 WHERE id = %(job_id)s AND claims = %(claims)s AND status = 'running'
RETURNING id
), event AS (
    INSERT INTO job_events (job_id, event, detail, data)
    SELECT id, %(event)s, %(detail)s, '{}' FROM kept WHERE %(event)s::text IS NOT NULL
), claimed AS (
INSERT INTO notifications (job_id, kind, chat_id, status, text, attempts, outbox)
SELECT id, %(kind)s, %(chat_id)s, 'sending', %(text)s, 1, false FROM kept
ON CONFLICT (job_id, kind) DO UPDATE
   SET status = 'sending', attempts = notifications.attempts + 1, updated_at = now()
 WHERE notifications.status = 'retry' AND NOT notifications.outbox
RETURNING *
)
SELECT kept.id AS kept, claimed.* FROM kept LEFT JOIN claimed ON true"""

CLAIM_EXISTING = """
UPDATE notifications SET status = 'sending', attempts = attempts + 1, updated_at = now()
 WHERE job_id = %(job_id)s AND kind = %(kind)s AND outbox AND status IN ('pending', 'retry')
   AND next_attempt_at <= now() + interval '1 second'
RETURNING *"""

GET = "SELECT * FROM notifications WHERE job_id = %(job_id)s AND kind = %(kind)s"

MARK = """
UPDATE notifications
   SET status = %(status)s, message_id = coalesce(%(message_id)s, message_id),
       detail = %(detail)s, updated_at = now(),
       next_attempt_at = now() + make_interval(secs => %(delay)s)
 WHERE job_id = %(job_id)s AND kind = %(kind)s AND status = 'sending'
RETURNING job_id"""

# Outbox rows whose wake-up message may have been lost (due for a while, still unsent): make them
# claimable now and return them for a new wake-up. A row re-enters this set only after another
# ``after`` seconds unsent, so a lost wake-up costs at most that much delay.
REDISPATCH_DUE = """
UPDATE notifications SET next_attempt_at = now()
 WHERE (job_id, kind) IN (
       SELECT job_id, kind FROM notifications
        WHERE outbox AND status IN ('pending', 'retry')
          AND next_attempt_at < now() - make_interval(secs => %(after)s)
        ORDER BY next_attempt_at LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING job_id, kind"""
