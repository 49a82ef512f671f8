-- The jobs table, its timeline, the credit ledger and the notification record.
-- PostgreSQL is the source of truth: a job exists once its row commits; money moves only by
-- inserting immutable transfers, and account counters follow from them by trigger.

-- ---------------------------------------------------------------------------------------------
-- Ledger: accounts and immutable two-phase transfers (TigerBeetle's model)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,          -- 'user:42', 'system:issuance', 'system:revenue'
    user_id         bigint UNIQUE CHECK (user_id > 0),
    no_overdraft    boolean NOT NULL,
    debits_pending  bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A user can never spend (or hold) more than was credited: a CHECK, not an `if`.
    CONSTRAINT accounts_no_overdraft
        CHECK (NOT no_overdraft OR debits_pending + debits_posted <= credits_posted)
);

INSERT INTO accounts (code, no_overdraft) VALUES
    ('system:issuance', false),   -- source of granted credits; its balance is minus all grants
    ('system:revenue', false);    -- where held credits go when a job is captured

CREATE TABLE transfers (
    id                uuid PRIMARY KEY,            -- deterministic: uuid5 of job id and kind
    kind              text NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void')),
    debit_account_id  bigint NOT NULL REFERENCES accounts (id),
    credit_account_id bigint NOT NULL REFERENCES accounts (id),
    amount            bigint NOT NULL CHECK (amount > 0),
    pending_id        uuid REFERENCES transfers (id),
    job_id            bigint,
    reason            text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((kind IN ('post', 'void')) = (pending_id IS NOT NULL))
);

-- A hold resolves exactly once: one post or one void per pending transfer, never both.
CREATE UNIQUE INDEX transfers_resolve_once ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_job ON transfers (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX transfers_debit ON transfers (debit_account_id);
CREATE INDEX transfers_credit ON transfers (credit_account_id);

-- Resolutions must match their hold; filled in from the hold so callers cannot get them wrong.
CREATE FUNCTION transfers_check_resolution() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hold transfers%ROWTYPE;
BEGIN
    IF NEW.kind IN ('post', 'void') THEN
        SELECT * INTO hold FROM transfers WHERE id = NEW.pending_id;
        IF NOT FOUND OR hold.kind <> 'pending' THEN
            RAISE EXCEPTION 'transfer % resolves %, which is not a pending transfer',
                NEW.id, NEW.pending_id USING ERRCODE = 'P0001';
        END IF;
        IF NEW.amount <> hold.amount
           OR NEW.debit_account_id <> hold.debit_account_id
           OR NEW.credit_account_id <> hold.credit_account_id THEN
            RAISE EXCEPTION 'transfer % does not match the hold % it resolves', NEW.id, hold.id
                USING ERRCODE = 'P0001';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER transfers_check_resolution BEFORE INSERT ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_check_resolution();

-- The only writer of account counters. Debit side first, then credit side: a fixed order so
-- concurrent transfers cannot deadlock (users are debited by holds, credited only by grants).
CREATE FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'single' THEN
        UPDATE accounts SET debits_posted = debits_posted + NEW.amount WHERE id = NEW.debit_account_id;
        UPDATE accounts SET credits_posted = credits_posted + NEW.amount WHERE id = NEW.credit_account_id;
    ELSIF NEW.kind = 'pending' THEN
        UPDATE accounts SET debits_pending = debits_pending + NEW.amount WHERE id = NEW.debit_account_id;
        UPDATE accounts SET credits_pending = credits_pending + NEW.amount WHERE id = NEW.credit_account_id;
    ELSIF NEW.kind = 'post' THEN
        UPDATE accounts SET debits_pending = debits_pending - NEW.amount,
                            debits_posted = debits_posted + NEW.amount
         WHERE id = NEW.debit_account_id;
        UPDATE accounts SET credits_pending = credits_pending - NEW.amount,
                            credits_posted = credits_posted + NEW.amount
         WHERE id = NEW.credit_account_id;
    ELSE -- void
        UPDATE accounts SET debits_pending = debits_pending - NEW.amount WHERE id = NEW.debit_account_id;
        UPDATE accounts SET credits_pending = credits_pending - NEW.amount WHERE id = NEW.credit_account_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_apply AFTER INSERT ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_apply();

CREATE FUNCTION refuse_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable; % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0001';
END $$;

CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION refuse_mutation();

-- ---------------------------------------------------------------------------------------------
-- Requests: one submission (1, 3 or 5 jobs), with its Stripe-style idempotency key
-- ---------------------------------------------------------------------------------------------

CREATE TABLE requests (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL CHECK (user_id > 0),
    kind            text NOT NULL,
    idempotency_key text,
    fingerprint     text NOT NULL,                 -- sha256 of the canonical request
    response        jsonb NOT NULL,                -- what the first submit answered
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);

-- ---------------------------------------------------------------------------------------------
-- Jobs: the source of truth; Redis messages only say "job N may have work"
-- ---------------------------------------------------------------------------------------------

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    request_id       uuid NOT NULL REFERENCES requests (id),
    user_id          bigint NOT NULL CHECK (user_id > 0),
    chat_id          bigint NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    step             text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- consumed in this step
    claims           bigint NOT NULL DEFAULT 0,    -- fencing token, bumped by every claim
    rescues          integer NOT NULL DEFAULT 0,   -- leases that expired under this job
    payload          jsonb NOT NULL,               -- the request (product info), never changed
    state            jsonb NOT NULL DEFAULT '{}',  -- what the job kind's steps have learned
    price            bigint NOT NULL CHECK (price >= 0),
    deadline_at      timestamptz NOT NULL,
    next_run_at      timestamptz NOT NULL DEFAULT now(),
    dispatched_at    timestamptz,                  -- last time a wake-up message was sent
    lease_owner      text,
    lease_expires_at timestamptz,
    provider_task_id text,
    key_name         text,
    error_class      text CHECK (error_class IN ('USER_ERROR', 'TEMPORARY', 'RATE_LIMIT',
                                 'BILLING', 'AUTH', 'UNAVAILABLE', 'INTERNAL')),
    error            text,
    user_error       text,                         -- what the user was told
    result           text,                         -- stored file
    cloned_from      bigint REFERENCES jobs (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);

ALTER TABLE transfers ADD CONSTRAINT transfers_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id);

CREATE INDEX jobs_runnable ON jobs (next_run_at) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_active_deadline ON jobs (deadline_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_user ON jobs (user_id, id DESC);
CREATE INDEX jobs_status ON jobs (status, id DESC);
CREATE INDEX jobs_request ON jobs (request_id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- The timeline a person reads with `worker jobs show`. Append-only.
CREATE TABLE job_events (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES jobs (id),
    at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    event  text NOT NULL,
    detail text NOT NULL DEFAULT '',
    data   jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TRIGGER job_events_immutable BEFORE UPDATE OR DELETE ON job_events
    FOR EACH ROW EXECUTE FUNCTION refuse_mutation();

-- ---------------------------------------------------------------------------------------------
-- Notifications: at most one message per job and kind, whatever retries happen
-- ---------------------------------------------------------------------------------------------

CREATE TABLE notifications (
    job_id          bigint NOT NULL REFERENCES jobs (id),
    kind            text NOT NULL,                 -- 'result', 'failure', 'progress'
    chat_id         bigint NOT NULL,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'sending', 'sent', 'retry', 'undeliverable')),
    outbox          boolean NOT NULL,              -- sent by the notify actor (else by a step)
    text            text NOT NULL DEFAULT '',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    message_id      bigint,
    detail          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, kind)
);

-- The outbox: messages committed with the job's outcome, sent after the commit by the notify
-- actor. Rows a step sends itself (the result video) are never picked up here.
CREATE INDEX notifications_due ON notifications (next_attempt_at)
    WHERE outbox AND status IN ('pending', 'retry');
