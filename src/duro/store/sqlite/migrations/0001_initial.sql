-- duro SQLite schema, version 1.
-- runs: one row per run; the live statuses are pending, running, suspended, parked.
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL,
    workflow_name   TEXT NOT NULL,
    status          TEXT NOT NULL,
    input           BLOB,
    result          BLOB,
    error           BLOB,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    closed_at       REAL,
    wake_at         REAL,
    owner           TEXT,
    epoch           INTEGER NOT NULL DEFAULT 0,
    history_len     INTEGER NOT NULL DEFAULT 0,
    code_hash       TEXT
);
-- The workflow id is the idempotency key: at most one live run per id.
CREATE UNIQUE INDEX runs_live_workflow_id ON runs (workflow_id)
    WHERE status IN ('pending', 'running', 'suspended', 'parked');
CREATE INDEX runs_workflow_id ON runs (workflow_id, created_at);
-- Claimable work: pending runs (wake_at = creation time) and due suspended runs.
CREATE INDEX runs_ready ON runs (wake_at) WHERE status IN ('pending', 'suspended');
CREATE INDEX runs_owned ON runs (owner) WHERE status = 'running';
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_status ON runs (status, created_at);
CREATE INDEX runs_name ON runs (workflow_name, created_at);

-- events: the append-only history. seq is dense per run, starting at 0.
CREATE TABLE events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    op      INTEGER,
    name    TEXT,
    ts      REAL NOT NULL,
    data    BLOB,
    meta    BLOB,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
-- Each operation's outcome is recorded at most once, whatever the bugs above.
CREATE UNIQUE INDEX events_outcome_once ON events (run_id, op)
    WHERE kind IN ('step_completed', 'step_failed', 'timer_fired');

-- inbox: messages for a run from outside (cancel requests now; signals later).
CREATE TABLE inbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT,
    data    BLOB,
    ts      REAL NOT NULL
);
CREATE INDEX inbox_run ON inbox (run_id, id);

-- workers: one lease per worker process; a run's owner holds it while its lease lives.
CREATE TABLE workers (
    worker_id   TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    lease_until REAL NOT NULL
);

-- heartbeats: the last details a step attempt reported, for the next attempt.
CREATE TABLE heartbeats (
    run_id  TEXT NOT NULL,
    op      INTEGER NOT NULL,
    details BLOB,
    ts      REAL NOT NULL,
    PRIMARY KEY (run_id, op)
) WITHOUT ROWID;
