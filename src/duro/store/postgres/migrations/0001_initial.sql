-- duro PostgreSQL schema, version 1. The same tables, columns and statuses as the SQLite
-- store; the tables live in the schema named by the URL (?schema=, default duro).

-- runs: one row per run; the live statuses are pending, running, suspended, parked.
-- Appends update history_len/updated_at only (no index on them), so with free room in
-- each page (fillfactor) those updates are HOT and leave the indexes alone.
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL,
    workflow_name   TEXT NOT NULL,
    status          TEXT NOT NULL,
    input           BYTEA,
    result          BYTEA,
    error           BYTEA,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    closed_at       DOUBLE PRECISION,
    wake_at         DOUBLE PRECISION,
    owner           TEXT,
    epoch           BIGINT NOT NULL DEFAULT 0,
    history_len     BIGINT NOT NULL DEFAULT 0,
    code_hash       TEXT,
    -- Insertion order, for "newest first" among runs created at the same instant
    -- (SQLite uses its rowid).
    created_seq     BIGINT GENERATED ALWAYS AS IDENTITY
) WITH (fillfactor = 70);
-- The workflow id is the idempotency key: at most one live run per id.
CREATE UNIQUE INDEX runs_live_workflow_id ON runs (workflow_id)
    WHERE status IN ('pending', 'running', 'suspended', 'parked');
CREATE INDEX runs_workflow_id ON runs (workflow_id, created_at);
-- Claimable work: pending runs (wake_at = creation time) and due suspended runs.
CREATE INDEX runs_ready ON runs (wake_at) WHERE status IN ('pending', 'suspended');
CREATE INDEX runs_owned ON runs (owner) WHERE status = 'running';
-- Finished runs, oldest first, for the retention job.
CREATE INDEX runs_closed ON runs (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_status ON runs (status, created_at);
CREATE INDEX runs_name ON runs (workflow_name, created_at);

-- events: the append-only history. seq is dense per run, starting at 0.
CREATE TABLE events (
    run_id  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    op      BIGINT,
    name    TEXT,
    ts      DOUBLE PRECISION NOT NULL,
    data    BYTEA,
    meta    BYTEA,
    PRIMARY KEY (run_id, seq)
);
-- Each operation's outcome is recorded at most once, whatever the bugs above.
CREATE UNIQUE INDEX events_outcome_once ON events (run_id, op)
    WHERE kind IN ('step_completed', 'step_failed', 'timer_fired');

-- inbox: messages for a run from outside (cancel requests now; signals later).
CREATE TABLE inbox (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT,
    data    BYTEA,
    ts      DOUBLE PRECISION NOT NULL
);
CREATE INDEX inbox_run ON inbox (run_id, id);

-- workers: one lease per worker process; a run's owner holds it while its lease lives.
CREATE TABLE workers (
    worker_id   TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL
);

-- heartbeats: the last details a step attempt reported, for the next attempt.
CREATE TABLE heartbeats (
    run_id  TEXT NOT NULL,
    op      BIGINT NOT NULL,
    details BYTEA,
    ts      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, op)
);
