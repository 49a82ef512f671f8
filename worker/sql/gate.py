"""Queries of the fair gate at a kind's bottleneck (``worker.fair_gate``, ``worker.admission``;
the table and ``gate_enter`` are in migrations/0009_fair_turns.sql)."""

# A job reaching the gate: its turn, the jobs waiting ahead of it, whether it passed (fewer
# than the window ahead) and the job it woke (one round trip).
ENTER = """
SELECT turn, ahead, passed, woken
  FROM gate_enter(%(id)s, %(gate)s, %(user_id)s, %(priority)s, %(fair)s, %(step)s,
                  %(before)s, %(width)s)"""

# The key pool refused the job inside the window (its accounts' window is spent): it waits
# again, with the turn it had.
UNPASS = """
UPDATE gate_turns SET asking_at = NULL, passed_at = NULL WHERE job_id = %(id)s"""

# The job inside the window got its key: it leaves the line and wakes the next (``gate_pass``).
PASS = """
SELECT gate_pass(%(id)s, %(gate)s, %(fair)s, %(step)s, %(width)s) AS woken"""

# The waiting jobs by priority and turn: what the estimate at submit reads (cached).
BACKLOG = """
SELECT priority, turn, count(*) AS n FROM gate_turns
 WHERE gate = %(gate)s AND passed_at IS NULL
 GROUP BY priority, turn ORDER BY priority DESC, turn"""

# The jobs still in the steps before the gate, by user (they reach it in a moment).
COMING = """
SELECT user_id, count(*) AS n FROM jobs
 WHERE status IN ('queued', 'running') AND kind = %(kind)s AND step = ANY (%(before)s)
 GROUP BY user_id"""

# One user's waiting jobs at one priority: their last turn.
USER_LAST_TURN = """
SELECT turn FROM gate_turns
 WHERE gate = %(gate)s AND user_id = %(user_id)s AND priority = %(priority)s
   AND passed_at IS NULL
 ORDER BY turn DESC LIMIT 1"""

# Recent history (the last hour's passes): the typical seconds before the gate (submit → gate)
# and after it (gate → succeeded), medians.
HISTORY = """
SELECT percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM g.entered_at - j.created_at)) AS before_s,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM j.finished_at - g.passed_at))
           FILTER (WHERE j.status = 'succeeded') AS after_s,
       count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded
  FROM gate_turns g JOIN jobs j ON j.id = g.job_id
 WHERE g.gate = %(gate)s AND g.passed_at > now() - make_interval(secs => %(seconds)s)"""

# Users' waits, submit → gate passed, over the window.
WAITS = """
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM g.passed_at - j.created_at)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM g.passed_at - j.created_at)) AS p95,
       max(extract(epoch FROM g.passed_at - j.created_at)) AS max
  FROM gate_turns g JOIN jobs j ON j.id = g.job_id
 WHERE g.gate = %(gate)s AND g.passed_at > now() - make_interval(secs => %(seconds)s)"""

# Rows of jobs that passed long ago (kept a day for the figures above).
PRUNE = """
DELETE FROM gate_turns
 WHERE gate = %(gate)s AND passed_at < now() - make_interval(secs => %(seconds)s)"""

# A request the user already made with this idempotency key (its replay is never Busy).
REQUEST_BY_KEY = """
SELECT id FROM requests WHERE user_id = %(user_id)s AND idempotency_key = %(idempotency_key)s"""
