CREATE TABLE api_tokens (
    token_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    secret_hash TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL,
    revoked_at  REAL
);

CREATE TABLE approvals (
    approval_id   TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    op            INTEGER NOT NULL,
    workflow_id   TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    name          TEXT NOT NULL,
    context       BLOB,
    requested_at  REAL NOT NULL,
    deadline_at   REAL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected',
                                                  'timed_out', 'run_ended')),
    decided_by    TEXT,
    comment       TEXT,
    decided_at    REAL
);

CREATE TABLE budget_reservations (
    namespace    TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start REAL NOT NULL,
    run_id       TEXT NOT NULL,
    op           INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    usd          REAL NOT NULL,
    tokens       INTEGER NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (namespace, key, window_start, run_id, op)
);

CREATE TABLE budget_spend (
    namespace       TEXT NOT NULL,
    key             TEXT NOT NULL,
    window_start    REAL NOT NULL,
    period          REAL,
    spent_usd       REAL NOT NULL DEFAULT 0,
    spent_tokens    INTEGER NOT NULL DEFAULT 0,
    settled         INTEGER NOT NULL DEFAULT 0,
    max_step_usd    REAL NOT NULL DEFAULT 0,
    max_step_tokens INTEGER NOT NULL DEFAULT 0,
    limit_usd       REAL,
    limit_tokens    INTEGER,
    override_usd    REAL,
    override_tokens INTEGER,
    updated_at      REAL NOT NULL,
    PRIMARY KEY (namespace, key, window_start)
);

CREATE TABLE duro_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);

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

CREATE TABLE heartbeats (
    run_id  TEXT NOT NULL,
    op      INTEGER NOT NULL,
    details BLOB,
    ts      REAL NOT NULL,
    PRIMARY KEY (run_id, op)
) WITHOUT ROWID;

CREATE TABLE inbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT,
    data    BLOB,
    ts      REAL NOT NULL
, meta BLOB);

CREATE TABLE langgraph_blobs (
    namespace     TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    channel       TEXT NOT NULL,
    version       TEXT NOT NULL,
    type          TEXT NOT NULL,
    blob          BLOB NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version)
);

CREATE TABLE langgraph_checkpoints (
    namespace     TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    parent_id     TEXT,
    run_id        TEXT,
    type          TEXT NOT NULL,
    checkpoint    BLOB NOT NULL,
    meta_type     TEXT NOT NULL,
    metadata      BLOB NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)
);

CREATE TABLE langgraph_writes (
    namespace     TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    type          TEXT NOT NULL,
    blob          BLOB NOT NULL,
    task_path     TEXT NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

CREATE TABLE queries (
    query_id      TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    workflow_id   TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    name          TEXT NOT NULL,
    args          BLOB,
    headers       TEXT,
    created_at    REAL NOT NULL,
    expires_at    REAL NOT NULL,
    claimed_by    TEXT,
    claimed_at    REAL,
    answered_at   REAL,
    answer        BLOB,
    error         BLOB
);

CREATE TABLE queue_starts (
    queue  TEXT NOT NULL,
    ts     REAL NOT NULL
);

CREATE TABLE queues (
    name             TEXT PRIMARY KEY,
    concurrency      INTEGER,
    per_worker       INTEGER,
    rate_limit       INTEGER,
    rate_period      REAL,
    key_concurrency  INTEGER,
    updated_at       REAL NOT NULL
);

CREATE TABLE run_search_attributes (
    run_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE run_state (
    run_id  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB,
    ts      REAL NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE run_stream_ops (
    run_id    TEXT NOT NULL,
    op        INTEGER NOT NULL,
    execution TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    PRIMARY KEY (run_id, op)
) WITHOUT ROWID;

CREATE TABLE run_streams (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    op         INTEGER NOT NULL,
    step       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    execution  TEXT NOT NULL,
    data       TEXT,
    superseded INTEGER NOT NULL DEFAULT 0,
    ts         REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

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
, parent_run_id TEXT, parent_op INTEGER, parent_close TEXT, deadline_at REAL, origin_run_id TEXT, queue TEXT NOT NULL DEFAULT 'default', priority INTEGER NOT NULL DEFAULT 0, concurrency_key TEXT, dedup_key TEXT, debounce_key TEXT, started_at REAL, recoveries INTEGER NOT NULL DEFAULT 0, on_trial INTEGER NOT NULL DEFAULT 0, depth INTEGER NOT NULL DEFAULT 0, headers TEXT, listed_at REAL GENERATED ALWAYS AS (
    CASE WHEN typeof(created_at) IN ('real', 'integer') THEN created_at ELSE 0 END) VIRTUAL, namespace TEXT NOT NULL DEFAULT 'default', waits TEXT);

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
    updated_at        REAL NOT NULL, namespace TEXT NOT NULL DEFAULT 'default',
    CHECK ((cron IS NULL) != (every IS NULL))
);

CREATE TABLE signal_ids (
    run_id     TEXT NOT NULL,
    signal_id  TEXT NOT NULL,
    ts         REAL NOT NULL,
    PRIMARY KEY (run_id, signal_id)
) WITHOUT ROWID;

CREATE TABLE step_cache (
    namespace  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    step       TEXT NOT NULL,
    result     BLOB NOT NULL,
    run_id     TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    PRIMARY KEY (namespace, scope, key)
);

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

CREATE TABLE updates (
    run_id     TEXT NOT NULL,
    update_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    result     BLOB,
    error      BLOB,
    ts         REAL NOT NULL,
    PRIMARY KEY (run_id, update_id)
) WITHOUT ROWID;

CREATE TABLE workers (
    worker_id   TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    lease_until REAL NOT NULL
, queues TEXT);

CREATE INDEX approvals_pending ON approvals (requested_at, approval_id)
    WHERE status = 'pending';

CREATE INDEX approvals_requested ON approvals (requested_at, approval_id);

CREATE INDEX approvals_run ON approvals (run_id);

CREATE UNIQUE INDEX events_outcome_once ON events (run_id, op)
    WHERE kind IN ('step_completed', 'step_failed', 'timer_fired');

CREATE INDEX inbox_run ON inbox (run_id, id);

CREATE INDEX langgraph_checkpoints_run ON langgraph_checkpoints (namespace, run_id)
    WHERE run_id IS NOT NULL;

CREATE INDEX queries_open ON queries (workflow_name, created_at) WHERE answered_at IS NULL;

CREATE INDEX queue_starts_by_queue ON queue_starts (queue, ts);

CREATE INDEX run_search_attributes_match
    ON run_search_attributes (key, value, created_at, run_id);

CREATE INDEX runs_created ON runs (listed_at, run_id);

CREATE INDEX runs_debounce ON runs (queue, debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'pending';

CREATE UNIQUE INDEX runs_live_dedup ON runs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running', 'suspended', 'parked');

CREATE UNIQUE INDEX runs_live_workflow_id ON runs (workflow_id)
    WHERE status IN ('pending', 'running', 'suspended', 'parked');

CREATE INDEX runs_name ON runs (workflow_name, listed_at, run_id);

CREATE INDEX runs_namespace ON runs (namespace, listed_at, run_id)
    WHERE namespace <> 'default';

CREATE INDEX runs_owned ON runs (owner) WHERE status = 'running';

CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

CREATE INDEX runs_queue_ready ON runs (queue, priority DESC, wake_at)
    WHERE status IN ('pending', 'suspended');

CREATE INDEX runs_queue_running ON runs (queue, concurrency_key) WHERE status = 'running';

CREATE INDEX runs_ready ON runs (wake_at) WHERE status IN ('pending', 'suspended');

CREATE INDEX runs_status ON runs (status, listed_at, run_id);

CREATE INDEX runs_workflow_id ON runs (workflow_id, created_at);

CREATE INDEX schedules_buffered ON schedules (last_workflow_id)
    WHERE buffered_at IS NOT NULL AND paused = 0;

CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

CREATE INDEX step_cache_expires ON step_cache (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX step_cache_step ON step_cache (namespace, step);

CREATE INDEX tasks_owned ON tasks (owner) WHERE status = 'running';

CREATE INDEX tasks_ready ON tasks (queue, created_at) WHERE status = 'pending';

CREATE INDEX tasks_run ON tasks (run_id);
