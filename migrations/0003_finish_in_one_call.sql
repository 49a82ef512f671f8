-- Fewer round trips per job (issue #7).
--
-- A step's terminal transition used to be eight round trips (BEGIN, the fenced update, a
-- savepoint, reading the hold, inserting its resolution, releasing the savepoint, the event,
-- COMMIT). finish_job does the same work, in the same order and in one transaction, in one call.
-- Money still moves only by inserting a transfer: the capture or refund of the job's hold, with
-- its deterministic id, so the ledger's triggers, CHECKs and unique indexes all still apply.
-- It also gives up a message the job's own step was still retrying (it would say 'retry' forever).

CREATE FUNCTION finish_job(
    p_id          bigint,
    p_claims      bigint,     -- the fencing token: nothing happens if the claim was lost
    p_status      text,       -- 'succeeded' (capture the hold) or 'failed' (refund it)
    p_state       jsonb,
    p_result      text,
    p_error_class text,
    p_error       text,
    p_user_error  text,
    p_event       text,       -- appended to the timeline, if not null
    p_detail      text,
    p_notify_kind text,       -- a message for the outbox, if not null (at most one per kind)
    p_notify_text text
) RETURNS boolean
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    hold transfers%ROWTYPE;
    resolution integer := CASE p_status WHEN 'succeeded' THEN 2 WHEN 'failed' THEN 3 END;
BEGIN
    IF resolution IS NULL THEN
        RAISE EXCEPTION 'finish_job: status must be succeeded or failed, not %', p_status
            USING ERRCODE = 'P0001';
    END IF;

    UPDATE jobs
       SET status = p_status, finished_at = now(), updated_at = now(),
           lease_owner = NULL, lease_expires_at = NULL,
           state = state || coalesce(p_state, '{}'),
           result = coalesce(p_result, result),
           error_class = p_error_class, error = p_error, user_error = p_user_error
     WHERE id = p_id AND claims = p_claims AND status = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    SELECT * INTO hold FROM transfers WHERE id = job_transfer_id(p_id, 1);
    IF FOUND THEN  -- a free job holds nothing
        INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, pending_id,
                               job_id, reason)
        VALUES (job_transfer_id(p_id, resolution),
                CASE resolution WHEN 2 THEN 'post' ELSE 'void' END,
                hold.debit_account_id, hold.credit_account_id, hold.amount, hold.id, p_id,
                CASE resolution WHEN 2 THEN 'capture' ELSE 'refund' END || ' for job ' || p_id)
        ON CONFLICT (id) DO NOTHING;
    END IF;

    IF p_event IS NOT NULL THEN
        INSERT INTO job_events (job_id, event, detail) VALUES (p_id, p_event, coalesce(p_detail, ''));
    END IF;

    -- A message the step sends itself (the result video) and that waits to be retried is
    -- retried only by that step: once the job has ended nobody will, so it is given up now
    -- instead of showing 'retry' forever.
    UPDATE notifications
       SET status = 'undeliverable', updated_at = now(),
           detail = 'gave up: the job ' || p_status || ' before the message could be sent again'
     WHERE job_id = p_id AND NOT outbox AND status = 'retry';

    IF p_notify_kind IS NOT NULL THEN
        INSERT INTO notifications (job_id, kind, chat_id, status, text, outbox)
        SELECT p_id, p_notify_kind, chat_id, 'pending', coalesce(p_notify_text, ''), true
          FROM jobs WHERE id = p_id
        ON CONFLICT (job_id, kind) DO NOTHING;
    END IF;
    RETURN true;
END $$;

-- The submit function's statements were planned afresh on every call (the planner kept
-- choosing custom plans for them); their generic plans are as good and cost nothing to reuse.
ALTER FUNCTION submit_jobs(uuid, bigint, bigint, text, text, jsonb, bigint, integer,
                           double precision, text, text, bigint, text)
    SET plan_cache_mode = force_generic_plan;
