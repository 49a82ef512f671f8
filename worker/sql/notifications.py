"""Queries of the notification outbox: at most one message per job and kind."""

ENQUEUE = """
INSERT INTO notifications (job_id, kind, chat_id, status, text)
VALUES (%(job_id)s, %(kind)s, %(chat_id)s, 'pending', %(text)s)
ON CONFLICT (job_id, kind) DO NOTHING
RETURNING job_id"""

# Claim a row for sending; creates it when the caller sends synchronously (the result video).
CLAIM = """
INSERT INTO notifications (job_id, kind, chat_id, status, text, attempts)
VALUES (%(job_id)s, %(kind)s, %(chat_id)s, 'sending', %(text)s, 1)
ON CONFLICT (job_id, kind) DO UPDATE
   SET status = 'sending', attempts = notifications.attempts + 1, updated_at = now()
 WHERE notifications.status IN ('pending', 'retry')
RETURNING *"""

CLAIM_EXISTING = """
UPDATE notifications SET status = 'sending', attempts = attempts + 1, updated_at = now()
 WHERE job_id = %(job_id)s AND kind = %(kind)s AND status IN ('pending', 'retry')
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
        WHERE status IN ('pending', 'retry')
          AND next_attempt_at < now() - make_interval(secs => %(after)s)
        ORDER BY next_attempt_at LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING job_id, kind"""
