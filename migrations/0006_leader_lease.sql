-- Leadership by a lease row (issue #21).
--
-- The maintenance loop runs in exactly one worker process at a time. It used to be elected by a
-- session-level advisory lock held on a connection of its own: one more server connection per
-- process, and impossible behind PgBouncer in transaction pooling mode (the lock sticks to
-- whichever server connection ran the statement). Now, as in River, the leader holds a row:
-- its holder and an expiry on the database's clock. The leader renews it at every tick with one
-- statement on a pooled connection; when it dies the row expires and any other process takes it
-- over at its next tick; a process that stops cleanly deletes its row so another takes over at
-- once. Several elections can share the table by name.

CREATE TABLE leaders (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9_.-]{1,64}$'),
    holder     text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    elected_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK (expires_at > renewed_at)
);

COMMENT ON TABLE leaders IS
    'one row per election: who leads (holder = host:pid:instance:nonce) until expires_at';
