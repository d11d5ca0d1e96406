-- Human approvals (issue 17, item 5): one row per duro.approval() a run requested,
-- written with its approval_requested event (the read model the inbox lists: pending
-- approvals across runs without reading histories). A decision is taken here first,
-- atomically (status 'pending' -> 'approved' | 'rejected'), then reaches the run through
-- its inbox; a run's end leaves none pending ('run_ended'). approval_id is the run id and
-- the operation (duro._history.approval_id_of); context is the payload the approver sees
-- (as stored: through the codecs).
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
-- The listing: oldest first, keyset by (requested_at, approval_id); the pending ones (the
-- inbox, its default) have their own small index.
CREATE INDEX approvals_requested ON approvals (requested_at, approval_id);
CREATE INDEX approvals_pending ON approvals (requested_at, approval_id)
    WHERE status = 'pending';
-- A run's end closes its pending approvals.
CREATE INDEX approvals_run ON approvals (run_id);
