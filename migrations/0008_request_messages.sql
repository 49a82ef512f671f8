-- Messages about a whole request (issue #19, "the conversation").
--
-- A request of several jobs (a bot's "3 videos") gets one summary message once its last job
-- ends, however it ends (a step's success or failure, the maintenance loop's deadline and poison
-- failures, a cancel), and at most one "still working" message, not one per job.
--
-- Such a message is an outbox row like any other, filed under the job that queued it (so
-- `worker jobs show` lists it with that job's messages and the notify actor sends it by
-- (job_id, kind)), with the request's id: a unique index allows one per request and kind.
--
-- "This was the last job" is decided inside end_job, under a lock of the request's row: two
-- jobs of one request ending at the same moment in two processes would otherwise each see the
-- other still running (READ COMMITTED) and neither, or both, would queue the summary. The lock
-- is taken after the job's own row (the order Client.cancel already locks in), and is
-- FOR NO KEY UPDATE, which does not wait for the KEY SHARE locks that inserting rows referring
-- to the request takes. The summary's text is written when it is sent (the kind renders it in
-- the user's language from the request's tally), so the row is queued with an empty text.

ALTER TABLE notifications ADD COLUMN request_id uuid REFERENCES requests (id);

COMMENT ON COLUMN notifications.request_id IS
    'set on a message about the whole request (summary, progress): at most one per request and kind';

CREATE UNIQUE INDEX notifications_request_kind ON notifications (request_id, kind)
    WHERE request_id IS NOT NULL;

DROP FUNCTION end_job(bigint, bigint, boolean, text, jsonb, text, text, text, text, text, text,
                      text, jsonb, text, text);

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
    p_notify_text text,
    OUT done            boolean,  -- false: the job was not in a state this call may end
    OUT request_message text      -- 'summary' when this job was the last of its request to end
                                  -- and the request's summary was queued (the caller wakes it)
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    hold transfers%ROWTYPE;
    resolution integer := CASE p_status WHEN 'succeeded' THEN 2
                                        WHEN 'failed' THEN 3 WHEN 'cancelled' THEN 3 END;
    req uuid;
    chat bigint;
    jobs_in_request integer;
BEGIN
    done := false;
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
         WHERE id = p_id AND claims = p_claims AND status = 'running'
        RETURNING request_id, chat_id INTO req, chat;
    ELSE
        UPDATE jobs
           SET status = p_status, finished_at = now(), updated_at = now(),
               lease_owner = NULL, lease_expires_at = NULL, claims = claims + 1,
               state = state || coalesce(p_state, '{}'),
               result = coalesce(p_result, result),
               error_class = p_error_class, error = p_error, user_error = p_user_error
         WHERE id = p_id AND status IN ('queued', 'running')
           AND (status = 'queued' OR p_force OR lease_expires_at < now())
        RETURNING request_id, chat_id INTO req, chat;
    END IF;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    done := true;

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
        VALUES (p_id, p_notify_kind, chat, 'pending', coalesce(p_notify_text, ''), true)
        ON CONFLICT (job_id, kind) DO NOTHING;
    END IF;

    -- The request's summary, queued by whichever of its jobs ends last. The jobs of a request
    -- are all written by the one statement that submits it, so their number never changes; a
    -- request of one job needs no lock and gets no summary (its one message says it all).
    SELECT count(*) INTO jobs_in_request FROM jobs WHERE request_id = req;
    IF jobs_in_request > 1 THEN
        -- Serialise the ends of one request's jobs. Each statement of this function reads a
        -- fresh snapshot, so once the lock is ours the count below sees every job of the
        -- request that ended before us, and exactly one of them finds none left active.
        PERFORM 1 FROM requests WHERE id = req FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM jobs
                        WHERE request_id = req AND status IN ('queued', 'running')) THEN
            INSERT INTO notifications (job_id, kind, chat_id, status, text, outbox, request_id)
            VALUES (p_id, 'summary', chat, 'pending', '', true, req)
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                request_message := 'summary';
            END IF;
        END IF;
    END IF;
END $$;
