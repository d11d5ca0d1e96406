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
