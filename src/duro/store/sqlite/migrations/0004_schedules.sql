-- Schedules: cron expressions (in a time zone) or fixed intervals that start runs, one
-- run per tick. Firing advances next_fire_at with a compare-and-set and creates the
-- tick's run (workflow id '<schedule_id>@<tick>') in the same transaction.
CREATE TABLE schedules (
    schedule_id       TEXT PRIMARY KEY,
    workflow_name     TEXT NOT NULL,
    queue             TEXT NOT NULL DEFAULT 'default',
    input             BLOB NOT NULL,
    cron              TEXT,
    every             REAL,
    anchor            REAL NOT NULL DEFAULT 0,
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    overlap           TEXT NOT NULL DEFAULT 'skip',
    catch_up          REAL NOT NULL DEFAULT 60,
    source            TEXT NOT NULL DEFAULT 'api',
    paused            INTEGER NOT NULL DEFAULT 0,
    note              TEXT,
    next_fire_at      REAL,
    last_fire_at      REAL,
    last_workflow_id  TEXT,
    buffered_at       REAL,
    fired             INTEGER NOT NULL DEFAULT 0,
    missed            INTEGER NOT NULL DEFAULT 0,
    overlap_skipped   INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    CHECK ((cron IS NULL) != (every IS NULL))
);
-- Due ticks: what every worker's scheduler looks for.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;
-- Buffered ticks wait for their schedule's previous run to end.
CREATE INDEX schedules_buffered ON schedules (last_workflow_id)
    WHERE buffered_at IS NOT NULL AND paused = 0;
