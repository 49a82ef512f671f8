-- Indexes behind the dashboard's jobs list (worker/sql/dashboard.py): each filter a support
-- colleague pastes in a link walks its own (column, id DESC) index in the list's keyset order,
-- so a page costs the same on a million jobs as on a thousand. The list's other filters (user,
-- status) already have theirs (jobs_user, jobs_status in 0001).

-- "Where is my video?" comes with a chat more often than with a user id.
CREATE INDEX jobs_chat ON jobs (chat_id, id DESC);

-- Jobs that failed (or wait) for one class of error; most jobs have none, so partial.
CREATE INDEX jobs_error_class ON jobs (error_class, id DESC) WHERE error_class IS NOT NULL;

-- Jobs whose provider task was created with one key (a key an operator suspects).
CREATE INDEX jobs_key_name ON jobs (key_name, id DESC) WHERE key_name IS NOT NULL;

-- A time range becomes an id range: the first and last job created inside it.
CREATE INDEX jobs_created_at ON jobs (created_at);

-- A job's page lists the retries made of it.
CREATE INDEX jobs_cloned_from ON jobs (cloned_from) WHERE cloned_from IS NOT NULL;
