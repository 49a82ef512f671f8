"""The one query of a provider callback: make the job it names due now, if it is waiting for it."""

# Make the job due now only if it is queued at the step that waits for this task and not due
# already; append "callback" to its timeline and mark when (``state.callback_at``, epoch
# seconds) in the same statement. Whatever happened, say why in ``outcome``:
#   woken     made due now: send the wake-up
#   due       already due (a message is on its way, or a worker is about to claim it)
#   running   a step of it runs now with this task, or is creating it (no task recorded yet):
#             the step's own reschedule is about to land; the caller looks again shortly
#   stale     the job holds another task (a callback of an earlier generation, or a forgery)
#   moved     the job is past that step, or at a step that does not wait for this task
#   finished  the job ended
#   unknown   no such job of this kind
WAKE = """
WITH job AS (
    SELECT id, status, step, provider_task_id, next_run_at <= now() AS due
      FROM jobs WHERE id = %(id)s AND kind = %(kind)s
), woken AS (
    -- Conditions on the row itself, so that a concurrent change is rechecked under its lock.
    UPDATE jobs
       SET next_run_at = now(), dispatched_at = now(), updated_at = now(),
           state = state || jsonb_build_object('callback_at', extract(epoch FROM now()))
     WHERE id = %(id)s AND kind = %(kind)s AND status = 'queued' AND step = %(step)s
       AND provider_task_id = %(task)s AND next_run_at > now()
    RETURNING id
), event AS (
    INSERT INTO job_events (job_id, code, event, detail, data)
    SELECT id, 'job.callback', 'callback', %(detail)s, %(data)s FROM woken
)
SELECT CASE
         WHEN job.id IS NULL THEN 'unknown'
         WHEN EXISTS (SELECT 1 FROM woken) THEN 'woken'
         WHEN job.status NOT IN ('queued', 'running') THEN 'finished'
         WHEN job.provider_task_id IS NOT NULL AND job.provider_task_id <> %(task)s THEN 'stale'
         WHEN job.status = 'running' AND job.step = ANY(%(waiting_steps)s::text[]) THEN 'running'
         WHEN job.status = 'queued' AND job.step = %(step)s AND job.provider_task_id = %(task)s
              THEN 'due'
         ELSE 'moved'
       END AS outcome,
       job.status, job.step
  FROM (SELECT 1) AS one LEFT JOIN job ON true"""
