CREATE VIEW stats_run_facts AS
SELECT run_id, namespace, workflow_name, listed_at,
       CAST(floor(listed_at / 3600) AS INTEGER) AS hour, status,
       CASE WHEN typeof(closed_at) NOT IN ('real', 'integer') THEN -1000000
            WHEN closed_at - listed_at <= 0 THEN -999999
            ELSE CAST(floor(ln(closed_at - listed_at) / ln(1.05)) AS INTEGER) END AS dbucket,
       error IS NOT NULL AND status IN ('failed', 'timed_out', 'terminated', 'cancelled')
           AS erred,
       CASE WHEN error IS NOT NULL AND status IN ('failed', 'timed_out', 'terminated',
                                                   'cancelled')
                 AND json_valid(CAST(error AS TEXT))
            THEN coalesce(CAST(json_extract(CAST(error AS TEXT), '$.type') AS TEXT), '')
            ELSE '' END AS etype
FROM runs;

CREATE VIEW stats_step_facts AS
SELECT e.run_id, e.seq, r.namespace, r.workflow_name, r.listed_at,
       CAST(floor(r.listed_at / 3600) AS INTEGER) AS hour, coalesce(e.name, '') AS step,
       e.kind,
       CASE WHEN e.kind <> 'step_completed' AND json_valid(CAST(e.data AS TEXT))
            THEN coalesce(CAST(json_extract(CAST(e.data AS TEXT), '$.type') AS TEXT), '')
            ELSE '' END AS etype,
       CASE WHEN typeof(m.v) NOT IN ('real', 'integer') THEN -1000000
            WHEN m.v <= 0 THEN -999999
            ELSE CAST(floor(ln(m.v) / ln(1.05)) AS INTEGER) END AS dbucket,
       CASE WHEN m.u IS NULL THEN 0 ELSE (
           SELECT count(*) FROM json_each(m.u) x WHERE x.type = 'object') END AS calls,
       CASE WHEN m.u IS NULL THEN 0 ELSE coalesce((
           SELECT sum(CASE WHEN json_type(x.value, '$.input_tokens') = 'integer'
                           THEN json_extract(x.value, '$.input_tokens') END)
           FROM json_each(m.u) x WHERE x.type = 'object'), 0) END AS input_tokens,
       CASE WHEN m.u IS NULL THEN 0 ELSE coalesce((
           SELECT sum(CASE WHEN json_type(x.value, '$.output_tokens') = 'integer'
                           THEN json_extract(x.value, '$.output_tokens') END)
           FROM json_each(m.u) x WHERE x.type = 'object'), 0) END AS output_tokens,
       CASE WHEN m.u IS NULL THEN 0.0 ELSE (
           SELECT total(CASE WHEN json_type(x.value, '$.cost') IN ('integer', 'real')
                             THEN json_extract(x.value, '$.cost') END)
           FROM json_each(m.u) x WHERE x.type = 'object') END AS cost,
       CASE WHEN m.u IS NULL THEN 0 ELSE coalesce((
           SELECT sum(json_type(x.value, '$.cost') NOT IN ('integer', 'real')
                      OR json_type(x.value, '$.cost') IS NULL)
           FROM json_each(m.u) x WHERE x.type = 'object'), 0) END AS unpriced
FROM events e
JOIN runs r ON r.run_id = e.run_id
JOIN (SELECT e2.run_id, e2.seq,
             CASE WHEN json_valid(CAST(e2.meta AS TEXT))
                  THEN json_extract(CAST(e2.meta AS TEXT), '$.duration') END AS v,
             CASE WHEN instr(CAST(e2.meta AS TEXT), '"usage"') > 0
                       AND json_valid(CAST(e2.meta AS TEXT))
                       AND json_type(CAST(e2.meta AS TEXT), '$.usage') = 'array'
                  THEN json_extract(CAST(e2.meta AS TEXT), '$.usage') END AS u
      FROM events e2) m ON m.run_id = e.run_id AND m.seq = e.seq
WHERE e.kind IN ('step_completed', 'step_retrying', 'step_failed');

CREATE TRIGGER stats_run_deleted BEFORE DELETE ON runs BEGIN
    INSERT INTO stats_runs
    SELECT namespace, workflow_name, hour, status, dbucket, erred, etype, -1
    FROM stats_counted WHERE run_id = OLD.run_id
    ON CONFLICT DO UPDATE SET n = n + excluded.n;
    DELETE FROM stats_counted WHERE run_id = OLD.run_id;
    DELETE FROM stats_pending WHERE run_id = OLD.run_id;
END;

CREATE TRIGGER stats_run_inserted AFTER INSERT ON runs BEGIN
    INSERT INTO stats_pending VALUES (NEW.run_id) ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER stats_run_updated AFTER UPDATE OF history_len, status, closed_at, error ON runs
WHEN OLD.history_len IS NOT NEW.history_len OR OLD.status IS NOT NEW.status
     OR OLD.closed_at IS NOT NEW.closed_at OR OLD.error IS NOT NEW.error
BEGIN
    INSERT INTO stats_pending VALUES (NEW.run_id) ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER stats_step_deleted BEFORE DELETE ON events
WHEN OLD.kind IN ('step_completed', 'step_retrying', 'step_failed')
     AND OLD.seq < (SELECT counted_len FROM stats_counted WHERE run_id = OLD.run_id)
BEGIN
    INSERT INTO stats_steps
    SELECT namespace, workflow_name, hour, step, kind, etype, dbucket, -1, -calls,
           -input_tokens, -output_tokens, -cost, -unpriced
    FROM stats_step_facts WHERE run_id = OLD.run_id AND seq = OLD.seq
    ON CONFLICT DO UPDATE SET n = n + excluded.n, calls = calls + excluded.calls,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost = cost + excluded.cost, unpriced = unpriced + excluded.unpriced;
END;

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

CREATE TABLE stats_counted (
    run_id        TEXT PRIMARY KEY,
    counted_len   INTEGER NOT NULL,
    namespace     TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    hour          INTEGER NOT NULL,
    status        TEXT NOT NULL,
    dbucket       INTEGER NOT NULL,
    erred         INTEGER NOT NULL,
    etype         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE stats_pending (run_id TEXT PRIMARY KEY) WITHOUT ROWID;

CREATE TABLE stats_runs (
    namespace     TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    hour          INTEGER NOT NULL,
    status        TEXT NOT NULL,
    dbucket       INTEGER NOT NULL,
    erred         INTEGER NOT NULL,
    etype         TEXT NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (namespace, workflow_name, status, dbucket, erred, etype, hour)
) WITHOUT ROWID;

CREATE TABLE stats_steps (
    namespace     TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    hour          INTEGER NOT NULL,
    step          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    etype         TEXT NOT NULL,
    dbucket       INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    calls         INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost          REAL NOT NULL,
    unpriced      INTEGER NOT NULL,
    PRIMARY KEY (namespace, workflow_name, step, kind, etype, dbucket, hour)
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
