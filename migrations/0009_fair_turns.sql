-- Fair order at a kind's bottleneck (worker/fair_gate.py): the jobs waiting for a provider's
-- create slot, in PostgreSQL, so the order holds across every worker process and host and
-- survives restarts. A job gets its turn when it first reaches the gate (start-time fair
-- queueing): with V the smallest turn waiting (the current round), a user's next turn is
-- max(V, that user's last waiting turn + 1). The order is (priority DESC, turn, job_id); with
-- FAIR_ORDER=false, (priority DESC, job_id). A row stays after its job passed (passed_at), for
-- the wait percentiles and the typical time after the gate, and is pruned a day later.

CREATE TABLE gate_turns (
    job_id     bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    gate       text NOT NULL,      -- the job's kind: one gate per kind
    user_id    bigint NOT NULL,
    priority   integer NOT NULL DEFAULT 0,
    turn       bigint NOT NULL,
    entered_at timestamptz NOT NULL DEFAULT now(),
    asking_at  timestamptz,       -- inside the window, asking the key pool (still in line)
    passed_at  timestamptz        -- null: waiting at the gate
);

-- The waiting order (fair), and a job's position in it: a count over this index.
CREATE INDEX gate_turns_fair ON gate_turns (gate, priority DESC, turn, job_id)
    WHERE passed_at IS NULL;
-- The waiting order in submit order (FAIR_ORDER=false).
CREATE INDEX gate_turns_fifo ON gate_turns (gate, priority DESC, job_id)
    WHERE passed_at IS NULL;
-- A user's last waiting turn.
CREATE INDEX gate_turns_user ON gate_turns (gate, user_id, priority, turn)
    WHERE passed_at IS NULL;
-- Recent passes: wait percentiles, typical times, pruning.
CREATE INDEX gate_turns_passed ON gate_turns (gate, passed_at) WHERE passed_at IS NOT NULL;

-- A job reaching the gate: its turn (kept if it is already waiting) and how many jobs wait
-- ahead of it; with fewer than ``p_width`` ahead (the slots the accounts allow in one pacing
-- window), it enters the window (``passed``: it may ask the key pool, ``asking_at``; it stays
-- in line, ahead of the jobs behind it, until the key is its own, gate_pass, or the pool
-- refuses and it waits again with its turn; ``woken`` is kept for the callers, always null).
-- One round trip. A user's jobs keep their order: a job that arrives after a
-- later job of the same user (an earlier step ran slower) takes that job's turn, and the user's
-- waiting turns are handed out again in job order; and the user's earlier jobs still in the
-- steps before the gate (``p_before``; among their last 50) count as ahead of it.
CREATE FUNCTION gate_enter(p_job bigint, p_gate text, p_user bigint, p_priority integer,
                           p_fair boolean, p_step text, p_before text[], p_width integer)
RETURNS TABLE (turn bigint, ahead bigint, passed boolean, woken bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_turn bigint;
    v_round bigint;
    v_last bigint;
BEGIN
    SELECT g.turn INTO v_turn FROM gate_turns g WHERE g.job_id = p_job AND g.passed_at IS NULL;
    IF v_turn IS NULL THEN
        -- One user's entries one at a time (other users' go on in parallel).
        PERFORM pg_advisory_xact_lock(hashtextextended('gate:' || p_gate || ':' || p_user, 0));
        SELECT g.turn INTO v_round FROM gate_turns g
         WHERE g.gate = p_gate AND g.priority = p_priority AND g.passed_at IS NULL
         ORDER BY g.turn LIMIT 1;
        SELECT g.turn INTO v_last FROM gate_turns g
         WHERE g.gate = p_gate AND g.user_id = p_user AND g.priority = p_priority
           AND g.passed_at IS NULL
         ORDER BY g.turn DESC LIMIT 1;
        v_turn := greatest(coalesce(v_round, 0), coalesce(v_last + 1, 0));
        INSERT INTO gate_turns AS g (job_id, gate, user_id, priority, turn)
        VALUES (p_job, p_gate, p_user, p_priority, v_turn)
        ON CONFLICT (job_id) DO UPDATE
           SET gate = excluded.gate, user_id = excluded.user_id, priority = excluded.priority,
               turn = excluded.turn, entered_at = now(), asking_at = NULL, passed_at = NULL;
        IF EXISTS (SELECT 1 FROM gate_turns g
                    WHERE g.gate = p_gate AND g.user_id = p_user AND g.priority = p_priority
                      AND g.passed_at IS NULL AND g.job_id > p_job) THEN
            UPDATE gate_turns g SET turn = s.turn
              FROM (SELECT a.job_id, b.turn
                      FROM (SELECT x.job_id, row_number() OVER (ORDER BY x.job_id) AS r
                              FROM gate_turns x
                             WHERE x.gate = p_gate AND x.user_id = p_user
                               AND x.priority = p_priority AND x.passed_at IS NULL) a
                      JOIN (SELECT x.turn, row_number() OVER (ORDER BY x.turn, x.job_id) AS r
                              FROM gate_turns x
                             WHERE x.gate = p_gate AND x.user_id = p_user
                               AND x.priority = p_priority AND x.passed_at IS NULL) b
                        ON a.r = b.r) s
             WHERE g.job_id = s.job_id AND g.turn <> s.turn;
            SELECT g.turn INTO v_turn FROM gate_turns g WHERE g.job_id = p_job;
        END IF;
    END IF;
    turn := v_turn;
    IF p_fair THEN
        SELECT count(*) INTO ahead FROM gate_turns g
         WHERE g.gate = p_gate AND g.passed_at IS NULL
           AND (g.priority > p_priority
                OR (g.priority = p_priority AND (g.turn, g.job_id) < (v_turn, p_job)))
           AND (g.asking_at IS NULL OR g.asking_at > now() - interval '10 seconds');
    ELSE
        SELECT count(*) INTO ahead FROM gate_turns g
         WHERE g.gate = p_gate AND g.passed_at IS NULL
           AND (g.priority > p_priority OR (g.priority = p_priority AND g.job_id < p_job))
           AND (g.asking_at IS NULL OR g.asking_at > now() - interval '10 seconds');
    END IF;
    -- The user's earlier jobs not at the gate yet: in a step before it, or at its step
    -- without a turn (entering right now, in another process).
    ahead := ahead + (SELECT count(*)
                        FROM (SELECT j.id, j.kind, j.status, j.step FROM jobs j
                               WHERE j.user_id = p_user AND j.id < p_job
                               ORDER BY j.id DESC LIMIT 50) earlier
                       WHERE earlier.kind = p_gate AND earlier.status IN ('queued', 'running')
                         AND (earlier.step = ANY (p_before)
                              OR (earlier.step = p_step
                                  AND NOT EXISTS (SELECT 1 FROM gate_turns t
                                                   WHERE t.job_id = earlier.id))));
    passed := ahead < p_width;
    IF passed THEN
        -- Inside the window: it asks the key pool now, and stays in line (counted ahead of the
        -- jobs behind it) until the key is its own (gate_pass) or the pool refuses (asking_at
        -- cleared): so a job behind cannot slip past it into a slot that is freeing.
        UPDATE gate_turns g SET asking_at = now() WHERE g.job_id = p_job;
    END IF;
    woken := NULL;
    RETURN NEXT;
END $$;

-- A job that ends while waiting (deadline, cancel, failure) leaves the gate with it.
CREATE FUNCTION gate_turn_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM gate_turns WHERE job_id = NEW.id AND passed_at IS NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_leave_gate AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled')
                       AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION gate_turn_end();

-- The job inside the window got its key: it leaves the line, and the job that now stands at
-- the window's last place is made due (``woken``), so no slot is lost to a sleeping job.
CREATE FUNCTION gate_pass(p_job bigint, p_gate text, p_fair boolean, p_step text,
                          p_width integer)
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    v_woken bigint[];
BEGIN
    UPDATE gate_turns g SET passed_at = now(), asking_at = NULL
     WHERE g.job_id = p_job AND g.passed_at IS NULL;
    WITH following AS (
        SELECT g.job_id FROM gate_turns g
         WHERE g.gate = p_gate AND g.passed_at IS NULL
         ORDER BY g.priority DESC, CASE WHEN p_fair THEN g.turn ELSE 0 END, g.job_id
         OFFSET p_width - 1 LIMIT 1
    ), due AS (
        UPDATE jobs j SET next_run_at = now(), updated_at = now() FROM following f
         WHERE j.id = f.job_id AND j.status = 'queued' AND j.step = p_step
           AND j.next_run_at > now()
        RETURNING j.id
    ) SELECT array_agg(due.id) INTO v_woken FROM due;
    RETURN v_woken;
END $$;
