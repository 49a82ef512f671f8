"""The leader lease (migrations/0006): one statement to take or keep it, one to give it up."""

#: Take the lease if nobody holds it or it expired, or renew it if we hold it. Returns a row
#: only when we lead afterwards; ``new`` says the lease changed hands (a takeover or a first
#: election), ``previous`` who held it before.
ELECT = """
WITH before AS (SELECT holder FROM leaders WHERE name = %(name)s)
INSERT INTO leaders AS l (name, holder, elected_at, renewed_at, expires_at)
VALUES (%(name)s, %(holder)s, now(), now(), now() + make_interval(secs => %(ttl)s))
ON CONFLICT (name) DO UPDATE
   SET holder = excluded.holder,
       elected_at = CASE WHEN l.holder = excluded.holder THEN l.elected_at ELSE now() END,
       renewed_at = now(),
       expires_at = excluded.expires_at
 WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING l.elected_at = now() AS new, (SELECT holder FROM before) AS previous
"""

#: Give the lease up at once (a clean stop), if we still hold it.
RESIGN = "DELETE FROM leaders WHERE name = %(name)s AND holder = %(holder)s"

#: Who leads, and for how much longer (``live`` is false once the lease expired).
CURRENT = """
SELECT holder, elected_at, renewed_at, expires_at, expires_at > now() AS live
  FROM leaders WHERE name = %(name)s
"""
