-- Submit in one round trip: the idempotency check, the balance check under the account's row
-- lock, the request, the job rows, their holds and their first events, all in one statement
-- (and so one transaction). The CHECK on accounts and the transfer triggers still apply.

-- Deterministic transfer ids of a job's hold (1), capture (2) and refund (3): readable, unique,
-- and computable here as well as in Python (worker.ledger.job_transfer_id).
CREATE FUNCTION job_transfer_id(p_job_id bigint, p_kind integer) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(p_kind), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(p_job_id), 12, '0'))::uuid
$$;

CREATE FUNCTION submit_jobs(
    p_request_id       uuid,
    p_user_id          bigint,
    p_chat_id          bigint,
    p_kind             text,
    p_step             text,
    p_payload          jsonb,
    p_price            bigint,
    p_count            integer,
    p_deadline_seconds double precision,
    p_idempotency_key  text,
    p_fingerprint      text,
    p_cloned_from      bigint,
    p_detail           text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    existing  requests%ROWTYPE;
    acct      accounts%ROWTYPE;
    needed    bigint := p_price * p_count;
    available bigint := 0;
    ids       bigint[];
    revenue   bigint;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO existing FROM requests
         WHERE user_id = p_user_id AND idempotency_key = p_idempotency_key;
        IF FOUND THEN
            RETURN submit_replay(existing, p_fingerprint);
        END IF;
    END IF;

    SELECT * INTO acct FROM accounts WHERE user_id = p_user_id FOR UPDATE;
    IF FOUND THEN
        available := acct.credits_posted - acct.debits_posted - acct.debits_pending;
    END IF;
    IF needed > available THEN
        RETURN jsonb_build_object('status', 'insufficient', 'needed', needed, 'available', available);
    END IF;

    INSERT INTO requests (id, user_id, kind, idempotency_key, fingerprint, response)
    VALUES (p_request_id, p_user_id, p_kind, p_idempotency_key, p_fingerprint,
            jsonb_build_object('credits_held', needed, 'available', available - needed))
    ON CONFLICT (user_id, idempotency_key) DO NOTHING;
    IF NOT FOUND THEN  -- a concurrent submit with the same key committed first
        SELECT * INTO existing FROM requests
         WHERE user_id = p_user_id AND idempotency_key = p_idempotency_key;
        RETURN submit_replay(existing, p_fingerprint);
    END IF;

    WITH created AS (
        INSERT INTO jobs (kind, request_id, user_id, chat_id, step, payload, price, deadline_at,
                          cloned_from, dispatched_at)
        SELECT p_kind, p_request_id, p_user_id, p_chat_id, p_step, p_payload, p_price,
               now() + make_interval(secs => p_deadline_seconds), p_cloned_from, now()
          FROM generate_series(1, p_count)
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO ids FROM created;

    IF p_price > 0 THEN
        SELECT id INTO revenue FROM accounts WHERE code = 'system:revenue';
        INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, job_id, reason)
        SELECT job_transfer_id(j, 1), 'pending', acct.id, revenue, p_price, j, 'hold for job ' || j
          FROM unnest(ids) AS j;
    END IF;

    INSERT INTO job_events (job_id, event, detail, data)
    SELECT j, 'submitted', p_detail,
           jsonb_build_object('request_id', p_request_id, 'price', p_price)
      FROM unnest(ids) AS j;

    RETURN jsonb_build_object('status', 'created', 'request_id', p_request_id,
                              'job_ids', to_jsonb(ids), 'credits_held', needed,
                              'available', available - needed);
END $$;

-- The first answer to an idempotency key, or a conflict if the request differs.
CREATE FUNCTION submit_replay(r requests, p_fingerprint text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN r.fingerprint <> p_fingerprint THEN jsonb_build_object('status', 'conflict')
        ELSE jsonb_build_object(
            'status', 'replayed', 'request_id', r.id,
            'job_ids', (SELECT coalesce(jsonb_agg(id ORDER BY id), '[]') FROM jobs WHERE request_id = r.id),
            'credits_held', r.response -> 'credits_held', 'available', r.response -> 'available')
    END
$$;
