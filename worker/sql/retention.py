"""Queries of the storage retention pass (worker/retention.py)."""

# Of these jobs, those finished more than ``age`` seconds ago, with how many days ago.
FINISHED_BEFORE = """
SELECT id, extract(epoch FROM now() - finished_at) / 86400 AS days
  FROM jobs
 WHERE id = ANY(%(ids)s::bigint[])
   AND finished_at < now() - make_interval(secs => %(age)s)"""

# One "file removed" event per job, in one statement.
FILE_REMOVED_EVENTS = """
INSERT INTO job_events (job_id, event, detail)
SELECT job_id, 'file removed', detail
  FROM unnest(%(ids)s::bigint[], %(details)s::text[]) AS t (job_id, detail)"""
