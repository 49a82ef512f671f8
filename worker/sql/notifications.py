"""Queries of the notification outbox: at most one message per job and kind, and at most one
per request and kind for a message about the whole request (``request_id`` set, migrations/0008).
"""

# ``per_request``: the message is about the job's whole request (e.g. "still working"), filed
# under this job with the request's id; whichever job of the request queues it first wins and
# the others queue nothing (the unique index on (request_id, kind)), whatever process they run in.
ENQUEUE = """
INSERT INTO notifications (job_id, kind, chat_id, status, text, outbox, request_id)
SELECT %(job_id)s, %(kind)s, %(chat_id)s, 'pending', %(text)s, true,
       CASE WHEN %(per_request)s THEN (SELECT request_id FROM jobs WHERE id = %(job_id)s) END
ON CONFLICT DO NOTHING
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

# The job's other outbox messages waiting to be sent (sent before its request's summary).
WAITING_BEFORE = """
SELECT kind FROM notifications
 WHERE job_id = %(job_id)s AND kind <> %(kind)s AND outbox AND status IN ('pending', 'retry')
   AND next_attempt_at <= now() + interval '1 second'
 ORDER BY created_at"""

GET = "SELECT * FROM notifications WHERE job_id = %(job_id)s AND kind = %(kind)s"

# ``text``: what was sent, when it was written at send time (a request's summary); null keeps it.
MARK = """
UPDATE notifications
   SET status = %(status)s, message_id = coalesce(%(message_id)s, message_id),
       text = coalesce(%(text)s, text), detail = %(detail)s, updated_at = now(),
       next_attempt_at = now() + make_interval(secs => %(delay)s)
 WHERE job_id = %(job_id)s AND kind = %(kind)s AND status = 'sending'
RETURNING job_id"""

# Outbox rows whose wake-up message may have been lost (due for a while, still unsent): make them
# claimable now and return them for a new wake-up. A row re-enters this set only after another
# ``after`` seconds unsent, so a lost wake-up costs at most that much delay. A request's message
# never tried yet is due after a second: one queued inside a transaction (a job ended by the
# maintenance loop or a cancel) had no wake-up, and this sends it at the loop's next tick.
REDISPATCH_DUE = """
UPDATE notifications SET next_attempt_at = now()
 WHERE (job_id, kind) IN (
       SELECT job_id, kind FROM notifications
        WHERE outbox AND status IN ('pending', 'retry')
          AND next_attempt_at < now() - make_interval(
                secs => CASE WHEN request_id IS NOT NULL AND attempts = 0
                             THEN least(%(after)s, 1.0) ELSE %(after)s END)
        ORDER BY next_attempt_at LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING job_id, kind"""

# How the jobs of a request ended, for its summary: the counts, the credits refunded (the
# ledger's refund transfers of its jobs, ``job_transfer_id(job, 3)``), and the job a "make
# another" button points at (the last that succeeded, else the first) with its kind and payload.
REQUEST_TALLY = """
WITH tally AS (
SELECT count(*) AS total,
       count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE j.status = 'failed') AS failed,
       count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE j.status IN ('queued', 'running')) AS active,
       coalesce(sum(t.amount), 0) AS refunded,
       coalesce(max(j.id) FILTER (WHERE j.status = 'succeeded'), min(j.id)) AS button_job
  FROM jobs j LEFT JOIN transfers t ON t.id = job_transfer_id(j.id, 3)
 WHERE j.request_id = %(request_id)s
)
SELECT tally.*, b.kind, b.payload FROM tally JOIN jobs b ON b.id = tally.button_job"""
