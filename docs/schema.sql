-- The database schema after every migration, read from PostgreSQL's catalog.
-- Migrations applied: 0001_initial, 0002_one_round_trip, 0003_finish_in_one_call, 0004_rescued_claim, 0005_end_job, 0006_leader_lease, 0007_dashboard_filters, 0008_request_messages, 0009_fair_turns.
-- Generated; do not edit. Change the schema with a new file in migrations/, then run
--   .venv/bin/python -m worker.schema > docs/schema.sql
-- tests/test_schema_doc.py fails while this file differs from what they make.

-- == Tables, their constraints and indexes ==

CREATE TABLE accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    code            text NOT NULL,
    user_id         bigint,
    no_overdraft    boolean NOT NULL,
    debits_pending  bigint DEFAULT 0 NOT NULL,
    debits_posted   bigint DEFAULT 0 NOT NULL,
    credits_pending bigint DEFAULT 0 NOT NULL,
    credits_posted  bigint DEFAULT 0 NOT NULL,
    created_at      timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT accounts_pkey PRIMARY KEY (id),
    CONSTRAINT accounts_code_key UNIQUE (code),
    CONSTRAINT accounts_user_id_key UNIQUE (user_id),
    CONSTRAINT accounts_credits_pending_check CHECK (credits_pending >= 0),
    CONSTRAINT accounts_credits_posted_check CHECK (credits_posted >= 0),
    CONSTRAINT accounts_debits_pending_check CHECK (debits_pending >= 0),
    CONSTRAINT accounts_debits_posted_check CHECK (debits_posted >= 0),
    CONSTRAINT accounts_no_overdraft CHECK (NOT no_overdraft OR (debits_pending + debits_posted) <= credits_posted),
    CONSTRAINT accounts_user_id_check CHECK (user_id > 0)
);

CREATE TABLE gate_turns (
    job_id     bigint NOT NULL,
    gate       text NOT NULL,
    user_id    bigint NOT NULL,
    priority   integer DEFAULT 0 NOT NULL,
    turn       bigint NOT NULL,
    entered_at timestamp with time zone DEFAULT now() NOT NULL,
    asking_at  timestamp with time zone,
    passed_at  timestamp with time zone,
    CONSTRAINT gate_turns_pkey PRIMARY KEY (job_id),
    CONSTRAINT gate_turns_job_id_fkey FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE
);
CREATE INDEX gate_turns_fair ON public.gate_turns USING btree (gate, priority DESC, turn, job_id) WHERE (passed_at IS NULL);
CREATE INDEX gate_turns_fifo ON public.gate_turns USING btree (gate, priority DESC, job_id) WHERE (passed_at IS NULL);
CREATE INDEX gate_turns_passed ON public.gate_turns USING btree (gate, passed_at) WHERE (passed_at IS NOT NULL);
CREATE INDEX gate_turns_user ON public.gate_turns USING btree (gate, user_id, priority, turn) WHERE (passed_at IS NULL);

CREATE TABLE job_events (
    id     bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    job_id bigint NOT NULL,
    at     timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    event  text NOT NULL,
    detail text DEFAULT ''::text NOT NULL,
    data   jsonb DEFAULT '{}'::jsonb NOT NULL,
    -- what happened, for programs (e.g. job.failed); event is the words a person reads
    code   text NOT NULL,
    CONSTRAINT job_events_pkey PRIMARY KEY (id),
    CONSTRAINT job_events_job_id_fkey FOREIGN KEY (job_id) REFERENCES jobs(id),
    CONSTRAINT job_events_code_format CHECK (code ~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$'::text)
);
CREATE INDEX job_events_job ON public.job_events USING btree (job_id, id);

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    kind             text NOT NULL,
    request_id       uuid NOT NULL,
    user_id          bigint NOT NULL,
    chat_id          bigint NOT NULL,
    status           text DEFAULT 'queued'::text NOT NULL,
    step             text NOT NULL,
    attempts         integer DEFAULT 0 NOT NULL,
    claims           bigint DEFAULT 0 NOT NULL,
    rescues          integer DEFAULT 0 NOT NULL,
    payload          jsonb NOT NULL,
    state            jsonb DEFAULT '{}'::jsonb NOT NULL,
    price            bigint NOT NULL,
    deadline_at      timestamp with time zone NOT NULL,
    next_run_at      timestamp with time zone DEFAULT now() NOT NULL,
    dispatched_at    timestamp with time zone,
    lease_owner      text,
    lease_expires_at timestamp with time zone,
    provider_task_id text,
    key_name         text,
    error_class      text,
    error            text,
    user_error       text,
    result           text,
    cloned_from      bigint,
    created_at       timestamp with time zone DEFAULT now() NOT NULL,
    updated_at       timestamp with time zone DEFAULT now() NOT NULL,
    started_at       timestamp with time zone,
    finished_at      timestamp with time zone,
    -- the claim token the last rescue took back; the next claim follows it when claims = rescued_claim + 1
    rescued_claim    bigint,
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_cloned_from_fkey FOREIGN KEY (cloned_from) REFERENCES jobs(id),
    CONSTRAINT jobs_request_id_fkey FOREIGN KEY (request_id) REFERENCES requests(id),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
    CONSTRAINT jobs_check CHECK ((status = 'running'::text) = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_check1 CHECK ((status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_error_class_check CHECK (error_class = ANY (ARRAY['USER_ERROR'::text, 'TEMPORARY'::text, 'RATE_LIMIT'::text, 'BILLING'::text, 'AUTH'::text, 'UNAVAILABLE'::text, 'INTERNAL'::text])),
    CONSTRAINT jobs_price_check CHECK (price >= 0),
    CONSTRAINT jobs_status_check CHECK (status = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])),
    CONSTRAINT jobs_user_id_check CHECK (user_id > 0)
);
CREATE INDEX jobs_active_deadline ON public.jobs USING btree (deadline_at) WHERE (status = ANY (ARRAY['queued'::text, 'running'::text]));
CREATE INDEX jobs_chat ON public.jobs USING btree (chat_id, id DESC);
CREATE INDEX jobs_cloned_from ON public.jobs USING btree (cloned_from) WHERE (cloned_from IS NOT NULL);
CREATE INDEX jobs_created_at ON public.jobs USING btree (created_at);
CREATE INDEX jobs_error_class ON public.jobs USING btree (error_class, id DESC) WHERE (error_class IS NOT NULL);
CREATE INDEX jobs_finished ON public.jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL);
CREATE INDEX jobs_key_name ON public.jobs USING btree (key_name, id DESC) WHERE (key_name IS NOT NULL);
CREATE INDEX jobs_leased ON public.jobs USING btree (lease_expires_at) WHERE (status = 'running'::text);
CREATE INDEX jobs_request ON public.jobs USING btree (request_id);
CREATE INDEX jobs_runnable ON public.jobs USING btree (next_run_at) WHERE (status = 'queued'::text);
CREATE INDEX jobs_status ON public.jobs USING btree (status, id DESC);
CREATE INDEX jobs_user ON public.jobs USING btree (user_id, id DESC);

-- one row per election: who leads (holder = host:pid:instance:nonce) until expires_at
CREATE TABLE leaders (
    name       text NOT NULL,
    holder     text NOT NULL,
    elected_at timestamp with time zone DEFAULT now() NOT NULL,
    renewed_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT leaders_pkey PRIMARY KEY (name),
    CONSTRAINT leaders_check CHECK (expires_at > renewed_at),
    CONSTRAINT leaders_holder_check CHECK (length(holder) >= 1 AND length(holder) <= 200),
    CONSTRAINT leaders_name_check CHECK (name ~ '^[a-z0-9_.-]{1,64}$'::text)
);

CREATE TABLE notifications (
    job_id          bigint NOT NULL,
    kind            text NOT NULL,
    chat_id         bigint NOT NULL,
    status          text NOT NULL,
    outbox          boolean NOT NULL,
    text            text DEFAULT ''::text NOT NULL,
    attempts        integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    message_id      bigint,
    detail          text DEFAULT ''::text NOT NULL,
    created_at      timestamp with time zone DEFAULT now() NOT NULL,
    updated_at      timestamp with time zone DEFAULT now() NOT NULL,
    -- set on a message about the whole request (summary, progress): at most one per request and kind
    request_id      uuid,
    CONSTRAINT notifications_pkey PRIMARY KEY (job_id, kind),
    CONSTRAINT notifications_job_id_fkey FOREIGN KEY (job_id) REFERENCES jobs(id),
    CONSTRAINT notifications_request_id_fkey FOREIGN KEY (request_id) REFERENCES requests(id),
    CONSTRAINT notifications_status_check CHECK (status = ANY (ARRAY['pending'::text, 'sending'::text, 'sent'::text, 'retry'::text, 'undeliverable'::text]))
);
CREATE INDEX notifications_due ON public.notifications USING btree (next_attempt_at) WHERE (outbox AND (status = ANY (ARRAY['pending'::text, 'retry'::text])));
CREATE UNIQUE INDEX notifications_request_kind ON public.notifications USING btree (request_id, kind) WHERE (request_id IS NOT NULL);

CREATE TABLE requests (
    id              uuid NOT NULL,
    user_id         bigint NOT NULL,
    kind            text NOT NULL,
    idempotency_key text,
    fingerprint     text NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT requests_pkey PRIMARY KEY (id),
    CONSTRAINT requests_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key),
    CONSTRAINT requests_user_id_check CHECK (user_id > 0)
);

CREATE TABLE schema_migrations (
    version    integer NOT NULL,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
);

CREATE TABLE transfers (
    id                uuid NOT NULL,
    kind              text NOT NULL,
    debit_account_id  bigint NOT NULL,
    credit_account_id bigint NOT NULL,
    amount            bigint NOT NULL,
    pending_id        uuid,
    job_id            bigint,
    reason            text NOT NULL,
    created_at        timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT transfers_pkey PRIMARY KEY (id),
    CONSTRAINT transfers_credit_account_id_fkey FOREIGN KEY (credit_account_id) REFERENCES accounts(id),
    CONSTRAINT transfers_debit_account_id_fkey FOREIGN KEY (debit_account_id) REFERENCES accounts(id),
    CONSTRAINT transfers_job_fk FOREIGN KEY (job_id) REFERENCES jobs(id),
    CONSTRAINT transfers_pending_id_fkey FOREIGN KEY (pending_id) REFERENCES transfers(id),
    CONSTRAINT transfers_amount_check CHECK (amount > 0),
    CONSTRAINT transfers_check CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT transfers_check1 CHECK ((kind = ANY (ARRAY['post'::text, 'void'::text])) = (pending_id IS NOT NULL)),
    CONSTRAINT transfers_kind_check CHECK (kind = ANY (ARRAY['single'::text, 'pending'::text, 'post'::text, 'void'::text]))
);
CREATE INDEX transfers_credit ON public.transfers USING btree (credit_account_id);
CREATE INDEX transfers_debit ON public.transfers USING btree (debit_account_id);
CREATE INDEX transfers_job ON public.transfers USING btree (job_id) WHERE (job_id IS NOT NULL);
CREATE UNIQUE INDEX transfers_resolve_once ON public.transfers USING btree (pending_id) WHERE (pending_id IS NOT NULL);

-- == Functions, by signature (their bodies are in migrations/) ==

FUNCTION end_job(p_id bigint, p_claims bigint, p_force boolean, p_status text, p_state jsonb, p_result text, p_error_class text, p_error text, p_user_error text, p_code text, p_event text, p_detail text, p_data jsonb, p_notify_kind text, p_notify_text text, OUT done boolean, OUT request_message text) RETURNS record LANGUAGE plpgsql VOLATILE;
FUNCTION event_code_of(p_event text) RETURNS text LANGUAGE sql IMMUTABLE;
FUNCTION gate_enter(p_job bigint, p_gate text, p_user bigint, p_priority integer, p_fair boolean, p_step text, p_before text[], p_width integer) RETURNS TABLE(turn bigint, ahead bigint, passed boolean, woken bigint[]) LANGUAGE plpgsql VOLATILE;
FUNCTION gate_pass(p_job bigint, p_gate text, p_fair boolean, p_step text, p_width integer) RETURNS bigint[] LANGUAGE plpgsql VOLATILE;
FUNCTION gate_turn_end() RETURNS trigger LANGUAGE plpgsql VOLATILE;
FUNCTION job_events_default_code() RETURNS trigger LANGUAGE plpgsql VOLATILE;
FUNCTION job_transfer_id(p_job_id bigint, p_kind integer) RETURNS uuid LANGUAGE sql IMMUTABLE;
FUNCTION refuse_mutation() RETURNS trigger LANGUAGE plpgsql VOLATILE;
FUNCTION submit_jobs(p_request_id uuid, p_user_id bigint, p_chat_id bigint, p_kind text, p_step text, p_payload jsonb, p_price bigint, p_count integer, p_deadline_seconds double precision, p_idempotency_key text, p_fingerprint text, p_cloned_from bigint, p_detail text) RETURNS jsonb LANGUAGE plpgsql VOLATILE;
FUNCTION submit_replay(r requests, p_fingerprint text) RETURNS jsonb LANGUAGE sql STABLE;
FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql VOLATILE;
FUNCTION transfers_check_resolution() RETURNS trigger LANGUAGE plpgsql VOLATILE;

-- == Triggers ==

CREATE TRIGGER job_events_default_code BEFORE INSERT ON job_events FOR EACH ROW EXECUTE FUNCTION job_events_default_code();
CREATE TRIGGER job_events_immutable BEFORE DELETE OR UPDATE ON job_events FOR EACH ROW EXECUTE FUNCTION refuse_mutation();
CREATE TRIGGER jobs_leave_gate AFTER UPDATE OF status ON jobs FOR EACH ROW WHEN ((new.status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])) AND old.status IS DISTINCT FROM new.status) EXECUTE FUNCTION gate_turn_end();
CREATE TRIGGER transfers_apply AFTER INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION transfers_apply();
CREATE TRIGGER transfers_check_resolution BEFORE INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION transfers_check_resolution();
CREATE TRIGGER transfers_immutable BEFORE DELETE OR UPDATE ON transfers FOR EACH ROW EXECUTE FUNCTION refuse_mutation();
