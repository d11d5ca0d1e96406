-- Queues and flow control (mirrors the SQLite store's migration 0003): which queue a run
-- belongs to, its priority, concurrency key, deduplication and debounce keys; per-queue
-- limits; a log of starts for rate limits; steps routed to queues (tasks).
ALTER TABLE runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN dedup_key TEXT;
ALTER TABLE runs ADD COLUMN debounce_key TEXT;
ALTER TABLE runs ADD COLUMN started_at DOUBLE PRECISION;

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

-- A row per queue with limits; claims in a limited queue lock it (SELECT ... FOR UPDATE),
-- so the limits are checked by one claimer at a time.
CREATE TABLE queues (
    name             TEXT PRIMARY KEY,
    concurrency      INTEGER,
    per_worker       INTEGER,
    rate_limit       INTEGER,
    rate_period      DOUBLE PRECISION,
    key_concurrency  INTEGER,
    updated_at       DOUBLE PRECISION NOT NULL
);

-- One row per run started in a rate-limited queue, kept for one rate period.
CREATE TABLE queue_starts (
    queue  TEXT NOT NULL,
    ts     DOUBLE PRECISION NOT NULL
);
CREATE INDEX queue_starts_by_queue ON queue_starts (queue, ts);

-- Steps routed to a queue: one row per attempt, claimed by a worker serving that queue.
-- Finished rows stay (status 'done') until the run ends, so re-sending the same attempt
-- after a crash is a no-op instead of a second execution.
CREATE TABLE tasks (
    task_id     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    op          BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    step        TEXT NOT NULL,
    queue       TEXT NOT NULL,
    args        BYTEA,
    info        BYTEA,
    status      TEXT NOT NULL,
    owner       TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX tasks_ready ON tasks (queue, created_at) WHERE status = 'pending';
CREATE INDEX tasks_owned ON tasks (owner) WHERE status = 'running';
CREATE INDEX tasks_run ON tasks (run_id);
