-- Schedules (mirrors the SQLite store's migration 0004): cron expressions (in a time
-- zone) or fixed intervals that start runs, one run per tick. Firing locks the row,
-- advances next_fire_at with a compare-and-set and creates the tick's run (workflow id
-- '<schedule_id>@<tick>') in the same transaction.
CREATE TABLE schedules (
    schedule_id       TEXT PRIMARY KEY,
    workflow_name     TEXT NOT NULL,
    queue             TEXT NOT NULL DEFAULT 'default',
    input             BYTEA NOT NULL,
    cron              TEXT,
    every             DOUBLE PRECISION,
    anchor            DOUBLE PRECISION NOT NULL DEFAULT 0,
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    overlap           TEXT NOT NULL DEFAULT 'skip',
    catch_up          DOUBLE PRECISION NOT NULL DEFAULT 60,
    source            TEXT NOT NULL DEFAULT 'api',
    paused            BOOLEAN NOT NULL DEFAULT false,
    note              TEXT,
    next_fire_at      DOUBLE PRECISION,
    last_fire_at      DOUBLE PRECISION,
    last_workflow_id  TEXT,
    buffered_at       DOUBLE PRECISION,
    fired             BIGINT NOT NULL DEFAULT 0,
    missed            BIGINT NOT NULL DEFAULT 0,
    overlap_skipped   BIGINT NOT NULL DEFAULT 0,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL,
    CHECK ((cron IS NULL) <> (every IS NULL))
);
-- Due ticks: what every worker's scheduler looks for.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;
-- Buffered ticks wait for their schedule's previous run to end.
CREATE INDEX schedules_buffered ON schedules (last_workflow_id)
    WHERE buffered_at IS NOT NULL AND NOT paused;
