-- Queries asked through the store: a client without a workflow's code leaves its
-- question here and a worker that has the code answers it (worker/_queries.py). A row
-- lives for the asker's timeout (expires_at) and is deleted once read.
CREATE TABLE queries (
    query_id      text PRIMARY KEY,
    run_id        text NOT NULL,
    workflow_id   text NOT NULL,
    workflow_name text NOT NULL,
    name          text NOT NULL,
    args          bytea,
    headers       text,
    created_at    double precision NOT NULL,
    expires_at    double precision NOT NULL,
    claimed_by    text,
    claimed_at    double precision,
    answered_at   double precision,
    answer        bytea,
    error         bytea
);
-- What a worker looks for at each poll: unanswered questions (usually none: the index
-- is empty and the look costs next to nothing).
CREATE INDEX queries_open ON queries (workflow_name, created_at) WHERE answered_at IS NULL;
-- Context carried with a run (trace ids, tenant, principal): a JSON object of strings,
-- NULL for none. Its steps, children and messages carry it on (interceptors).
ALTER TABLE runs ADD COLUMN headers text;
