-- A job ends in one place (issue #17).
--
-- Ending a job was written three times: finish_job (0003) for a step holding a claim, an
-- UPDATE plus a refund, an event and an outbox row in Python for the maintenance loop, and
-- another UPDATE plus refund plus event for Client.cancel. They drifted: only finish_job gave
-- up a result message left in 'retry', so a job failed by its deadline, as poison, or
-- cancelled left that row in 'retry' for ever. end_job is now the only statement that moves a
-- job to a terminal state, with or without a claim token, and does every part of it at once:
-- the fenced update, the hold's capture or refund (a ledger transfer with its deterministic
-- id), the timeline event, giving up a message nobody will retry, and the user's message.
--
-- Timeline events also get a code: a stable identifier for programs (tests, dashboards),
-- separate from the words `worker jobs show` displays. An insert that names no code gets one
-- derived from its display text, so older statements keep working.

DROP FUNCTION finish_job(bigint, bigint, text, jsonb, text, text, text, text, text, text, text,
                         text);

-- --- event codes --------------------------------------------------------------------------

ALTER TABLE job_events ADD COLUMN code text;

CREATE FUNCTION event_code_of(p_event text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(nullif(trim(BOTH '_' FROM
                                lower(regexp_replace(p_event, '[^A-Za-z0-9]+', '_', 'g'))), ''),
                    'event')
$$;

ALTER TABLE job_events DISABLE TRIGGER job_events_immutable;  -- a one-off backfill
UPDATE job_events SET code = event_code_of(event);
ALTER TABLE job_events ENABLE TRIGGER job_events_immutable;

CREATE FUNCTION job_events_default_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.code := coalesce(NEW.code, event_code_of(NEW.event));
    RETURN NEW;
END $$;

CREATE TRIGGER job_events_default_code BEFORE INSERT ON job_events
    FOR EACH ROW EXECUTE FUNCTION job_events_default_code();

ALTER TABLE job_events
    ALTER COLUMN code SET NOT NULL,
    ADD CONSTRAINT job_events_code_format CHECK (code ~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$');

COMMENT ON COLUMN job_events.code IS
    'what happened, for programs (e.g. job.failed); event is the words a person reads';

-- --- the one way a job ends ------------------------------------------------------------------

CREATE FUNCTION end_job(
    p_id          bigint,
    p_claims      bigint,     -- the claim token (fenced: nothing happens if it was lost), or
                              -- null: a job nobody holds (queued, or running under an expired
                              -- lease, or any active job with p_force); its token is bumped so a
                              -- stalled worker's later writes are refused
    p_force       boolean,
    p_status      text,       -- 'succeeded' (capture the hold), 'failed' or 'cancelled' (refund)
    p_state       jsonb,
    p_result      text,
    p_error_class text,
    p_error       text,
    p_user_error  text,
    p_code        text,       -- the event appended to the timeline, if p_event is not null
    p_event       text,
    p_detail      text,
    p_data        jsonb,
    p_notify_kind text,       -- a message for the outbox, if not null (at most one per kind)
    p_notify_text text
) RETURNS boolean
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    hold transfers%ROWTYPE;
    resolution integer := CASE p_status WHEN 'succeeded' THEN 2
                                        WHEN 'failed' THEN 3 WHEN 'cancelled' THEN 3 END;
BEGIN
    IF resolution IS NULL THEN
        RAISE EXCEPTION 'end_job: status must be succeeded, failed or cancelled, not %', p_status
            USING ERRCODE = 'P0001';
    END IF;

    IF p_claims IS NOT NULL THEN
        UPDATE jobs
           SET status = p_status, finished_at = now(), updated_at = now(),
               lease_owner = NULL, lease_expires_at = NULL,
               state = state || coalesce(p_state, '{}'),
               result = coalesce(p_result, result),
               error_class = p_error_class, error = p_error, user_error = p_user_error
         WHERE id = p_id AND claims = p_claims AND status = 'running';
    ELSE
        UPDATE jobs
           SET status = p_status, finished_at = now(), updated_at = now(),
               lease_owner = NULL, lease_expires_at = NULL, claims = claims + 1,
               state = state || coalesce(p_state, '{}'),
               result = coalesce(p_result, result),
               error_class = p_error_class, error = p_error, user_error = p_user_error
         WHERE id = p_id AND status IN ('queued', 'running')
           AND (status = 'queued' OR p_force OR lease_expires_at < now());
    END IF;
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
        INSERT INTO job_events (job_id, code, event, detail, data)
        VALUES (p_id, coalesce(p_code, event_code_of(p_event)), p_event, coalesce(p_detail, ''),
                coalesce(p_data, '{}'));
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
