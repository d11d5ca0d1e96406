-- Signal delivery ids (issue 16): a signal sent with an id is recorded at most once in
-- its workflow id's chain of runs (a fresh start and the runs it continued as new into),
-- so that a webhook provider retrying a delivery is a no-op. One row per id, with the run
-- that took it; the primary key refuses a second row for the same run whatever the
-- caller read before (send_message inserts it OR IGNORE, and the inbox message only if
-- the id was new). Earlier runs of the chain are found through runs_workflow_id.
CREATE TABLE signal_ids (
    run_id     TEXT NOT NULL,
    signal_id  TEXT NOT NULL,
    ts         REAL NOT NULL,
    PRIMARY KEY (run_id, signal_id)
) WITHOUT ROWID;
