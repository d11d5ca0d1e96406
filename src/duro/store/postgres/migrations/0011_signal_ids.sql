-- Signal delivery ids (issue 16): a signal sent with an id is recorded at most once in
-- its workflow id's chain of runs (a fresh start and the runs it continued as new into),
-- so that a webhook provider retrying a delivery is a no-op. One row per id, with the run
-- that took it; the primary key decides between concurrent deliveries of the same id
-- (send_message inserts it ON CONFLICT DO NOTHING, which waits for the other
-- transaction, and the inbox message only if its own insert went in). Earlier runs of
-- the chain are found through runs_workflow_id.
CREATE TABLE signal_ids (
    run_id     text NOT NULL,
    signal_id  text NOT NULL,
    ts         double precision NOT NULL,
    PRIMARY KEY (run_id, signal_id)
);
