-- Queues and flow control: which queue a run belongs to, its priority, concurrency key,
-- deduplication and debounce keys; per-queue limits; a log of starts for rate limits.
ALTER TABLE runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN dedup_key TEXT;
ALTER TABLE runs ADD COLUMN debounce_key TEXT;
ALTER TABLE runs ADD COLUMN started_at REAL;

-- Claimable work of one queue, best first.
CREATE INDEX runs_queue_ready ON runs (queue, priority DESC, wake_at)
    WHERE status IN ('pending', 'suspended');
-- Running runs per queue and per concurrency key (the limits count these).
CREATE INDEX runs_queue_running ON runs (queue, concurrency_key) WHERE status = 'running';
-- At most one live run per deduplication key in a queue.
CREATE UNIQUE INDEX runs_live_dedup ON runs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running', 'suspended', 'parked');
CREATE INDEX runs_debounce ON runs (queue, debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'pending';

CREATE TABLE queues (
    name             TEXT PRIMARY KEY,
    concurrency      INTEGER,
    per_worker       INTEGER,
    rate_limit       INTEGER,
    rate_period      REAL,
    key_concurrency  INTEGER,
    updated_at       REAL NOT NULL
);

-- One row per run started in a rate-limited queue, kept for one rate period.
CREATE TABLE queue_starts (
    queue  TEXT NOT NULL,
    ts     REAL NOT NULL
);
CREATE INDEX queue_starts_by_queue ON queue_starts (queue, ts);

-- Steps routed to a queue: one row per attempt, claimed by a worker serving that queue.
-- Finished rows stay (status 'done') until the run ends, so re-sending the same attempt
-- after a crash is a no-op instead of a second execution.
CREATE TABLE tasks (
    task_id     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    op          INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    step        TEXT NOT NULL,
    queue       TEXT NOT NULL,
    args        BLOB,
    info        BLOB,
    status      TEXT NOT NULL,
    owner       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX tasks_ready ON tasks (queue, created_at) WHERE status = 'pending';
CREATE INDEX tasks_owned ON tasks (owner) WHERE status = 'running';
CREATE INDEX tasks_run ON tasks (run_id);
