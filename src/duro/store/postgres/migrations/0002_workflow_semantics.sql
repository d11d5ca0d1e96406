-- Signals, published state, updates, child workflows, continue-as-new, run timeouts
-- (mirrors the SQLite store's migration 0002).
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_op BIGINT;
ALTER TABLE runs ADD COLUMN parent_close TEXT;
ALTER TABLE runs ADD COLUMN deadline_at DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN origin_run_id TEXT;
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

-- Published state: the latest value of each key, readable without replaying.
CREATE TABLE run_state (
    run_id  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BYTEA,
    ts      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Updates: one row per update id, so a repeated request returns the same outcome.
CREATE TABLE updates (
    run_id     TEXT NOT NULL,
    update_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    result     BYTEA,
    error      BYTEA,
    ts         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, update_id)
);
