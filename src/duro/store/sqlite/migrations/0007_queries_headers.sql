-- Queries asked through the store: a client without a workflow's code leaves its
-- question here and a worker that has the code answers it (worker/_queries.py). A row
-- lives for the asker's timeout (expires_at) and is deleted once read.
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
-- What a worker looks for at each poll: unanswered questions (usually none: the index
-- is empty and the look costs next to nothing).
CREATE INDEX queries_open ON queries (workflow_name, created_at) WHERE answered_at IS NULL;
-- Context carried with a run (trace ids, tenant, principal): a JSON object of strings,
-- NULL for none. Its steps, children and messages carry it on (interceptors).
ALTER TABLE runs ADD COLUMN headers TEXT;
