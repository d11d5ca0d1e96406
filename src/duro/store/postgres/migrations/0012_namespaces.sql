-- Namespaces (issue 16, item 3): every run and schedule belongs to one; a client scoped
-- to a namespace sees only its runs and schedules (docs/namespaces.md). Rows written
-- before this migration are in 'default', the namespace of a client that names none
-- (a constant default: PostgreSQL adds the column without rewriting the table).
-- Workflow ids stay unique across namespaces (runs_live_workflow_id is unchanged).
ALTER TABLE runs ADD COLUMN namespace text NOT NULL DEFAULT 'default';
ALTER TABLE schedules ADD COLUMN namespace text NOT NULL DEFAULT 'default';

-- A namespace's runs, newest first: the listing of a scoped client with no more
-- specific filter is one range of this index, as runs_created is for every run. Partial:
-- the runs of 'default' (every run of a deployment without tenants) are listed through
-- runs_created instead, so that a start there does not pay for one more index entry
-- (measured: 5-9% of a bare start on SQLite).
CREATE INDEX runs_namespace ON runs (namespace, created_at, run_id COLLATE "C")
    WHERE namespace <> 'default';
