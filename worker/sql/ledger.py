"""Queries of the credit ledger."""

ENSURE_USER_ACCOUNT = """
INSERT INTO accounts (code, user_id, no_overdraft) VALUES ('user:' || %(user_id)s, %(user_id)s, true)
ON CONFLICT (user_id) DO NOTHING"""

USER_ACCOUNT = "SELECT * FROM accounts WHERE user_id = %(user_id)s"

USER_ACCOUNT_FOR_UPDATE = "SELECT * FROM accounts WHERE user_id = %(user_id)s FOR UPDATE"

SYSTEM_ACCOUNT = "SELECT id FROM accounts WHERE code = %(code)s"

INSERT_TRANSFER = """
INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, pending_id, job_id, reason)
VALUES (%(id)s, %(kind)s, %(debit)s, %(credit)s, %(amount)s, %(pending_id)s, %(job_id)s, %(reason)s)
ON CONFLICT (id) DO NOTHING
RETURNING id"""

TRANSFER = "SELECT * FROM transfers WHERE id = %(id)s"

RESOLUTION_OF = "SELECT * FROM transfers WHERE pending_id = %(pending_id)s"

REFUNDED_TOTAL = """
SELECT coalesce(sum(amount), 0)::bigint AS refunded FROM transfers
WHERE kind = 'void' AND debit_account_id = %(account_id)s"""

# --- invariants (`worker ledger check`) -------------------------------------------------------

CHECK_DOUBLE_ENTRY = """
SELECT sum(debits_pending)::bigint  AS dp, sum(credits_pending)::bigint AS cp,
       sum(debits_posted)::bigint   AS dpo, sum(credits_posted)::bigint AS cpo
FROM accounts"""

CHECK_REPLAY = """
WITH moves AS (
    SELECT debit_account_id AS account, kind, -1 AS side, amount FROM transfers
    UNION ALL
    SELECT credit_account_id AS account, kind, 1 AS side, amount FROM transfers
), replay AS (
    SELECT account,
        sum(CASE WHEN side = -1 AND kind = 'pending' THEN amount
                 WHEN side = -1 AND kind IN ('post', 'void') THEN -amount ELSE 0 END) AS dp,
        sum(CASE WHEN side = -1 AND kind IN ('single', 'post') THEN amount ELSE 0 END) AS dpo,
        sum(CASE WHEN side = 1 AND kind = 'pending' THEN amount
                 WHEN side = 1 AND kind IN ('post', 'void') THEN -amount ELSE 0 END) AS cp,
        sum(CASE WHEN side = 1 AND kind IN ('single', 'post') THEN amount ELSE 0 END) AS cpo
    FROM moves GROUP BY account
)
SELECT a.code,
       a.debits_pending, coalesce(r.dp, 0)::bigint AS replay_dp,
       a.debits_posted, coalesce(r.dpo, 0)::bigint AS replay_dpo,
       a.credits_pending, coalesce(r.cp, 0)::bigint AS replay_cp,
       a.credits_posted, coalesce(r.cpo, 0)::bigint AS replay_cpo
FROM accounts a LEFT JOIN replay r ON r.account = a.id
WHERE a.debits_pending <> coalesce(r.dp, 0) OR a.debits_posted <> coalesce(r.dpo, 0)
   OR a.credits_pending <> coalesce(r.cp, 0) OR a.credits_posted <> coalesce(r.cpo, 0)
ORDER BY a.id LIMIT 20"""

CHECK_OVERDRAFT = """
SELECT code, debits_pending + debits_posted AS spent_or_held, credits_posted FROM accounts
WHERE no_overdraft AND debits_pending + debits_posted > credits_posted LIMIT 20"""

CHECK_RESOLVED_ONCE = """
SELECT h.id, count(r.id) AS resolutions,
       bool_and(r.amount = h.amount AND r.debit_account_id = h.debit_account_id
                AND r.credit_account_id = h.credit_account_id) AS matching
FROM transfers h JOIN transfers r ON r.pending_id = h.id
WHERE h.kind = 'pending'
GROUP BY h.id
HAVING count(r.id) > 1 OR NOT bool_and(r.amount = h.amount AND r.debit_account_id = h.debit_account_id
                AND r.credit_account_id = h.credit_account_id)
LIMIT 20"""

CHECK_JOB_HOLDS = """
SELECT j.id, j.status, j.price,
       h.id IS NOT NULL AS has_hold, r.kind AS resolution
FROM jobs j
LEFT JOIN transfers h ON h.job_id = j.id AND h.kind = 'pending'
LEFT JOIN transfers r ON r.pending_id = h.id
WHERE j.price > 0 AND NOT (
       (j.status IN ('queued', 'running') AND h.id IS NOT NULL AND r.id IS NULL)
    OR (j.status = 'succeeded' AND r.kind IS NOT DISTINCT FROM 'post')
    OR (j.status IN ('failed', 'cancelled') AND r.kind IS NOT DISTINCT FROM 'void'))
ORDER BY j.id LIMIT 20"""

SAMPLE_TRANSFERS = "SELECT * FROM transfers ORDER BY created_at DESC LIMIT %(limit)s"

ACCOUNT_SNAPSHOT = """
SELECT md5(string_agg(id || ':' || debits_pending || ':' || debits_posted || ':'
                      || credits_pending || ':' || credits_posted, ',' ORDER BY id)) AS digest,
       (SELECT count(*) FROM transfers) AS transfers
FROM accounts"""
