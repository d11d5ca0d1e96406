-- The rollup behind duro stats (issue 18, docs/observability.md "How it scales"): what
-- the stats read needs of each run and step event, counted per namespace, workflow name
-- and hour of the run's creation (stats_runs, stats_steps).
--
-- The writer pays one lookup per write of a run: its triggers only mark the run as
-- pending (stats_pending). What the rollup holds of each run (its facts and how many
-- of its events) is in stats_counted; the stats read of a writable store first brings
-- the pending runs in (sqlite/_store.py stats, the stats_catch_up_* queries), and any
-- read adds what is still pending (a read-only store), so the figures are exact. A
-- run's events only ever grow at its end (appends fenced on history_len), so the
-- length counted (its last seq + 1) is a safe watermark. The read sums the whole hours
-- of its window here and takes the one partial hour from the facts views.
--
-- Durations are counted in log-scale buckets: bucket b holds [1.05^b, 1.05^(b+1)); the
-- read reports 1.05^(b+0.5), within 2.5% of the value measured. Sentinels keep the keys
-- NOT NULL (an upsert never matches a NULL key): dbucket -1000000 = no duration (a run
-- not closed, an event without one), -999999 = zero or negative.

-- What each run adds to stats_runs: one row per run, its key columns.
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

-- What each step event adds to stats_steps: its kind, error type (a failed attempt's
-- ErrorInfo "type"), duration bucket (AttemptMeta / RetryMeta "duration") and the model
-- calls of its meta's "usage" list (only parsed where the text says "usage").
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
-- Each event's meta parsed once: its duration, and its usage list (only where the text
-- says "usage" and it is a list).
JOIN (SELECT e2.run_id, e2.seq,
             CASE WHEN json_valid(CAST(e2.meta AS TEXT))
                  THEN json_extract(CAST(e2.meta AS TEXT), '$.duration') END AS v,
             CASE WHEN instr(CAST(e2.meta AS TEXT), '"usage"') > 0
                       AND json_valid(CAST(e2.meta AS TEXT))
                       AND json_type(CAST(e2.meta AS TEXT), '$.usage') = 'array'
                  THEN json_extract(CAST(e2.meta AS TEXT), '$.usage') END AS u
      FROM events e2) m ON m.run_id = e.run_id AND m.seq = e.seq
WHERE e.kind IN ('step_completed', 'step_retrying', 'step_failed');

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

INSERT INTO stats_runs
SELECT namespace, workflow_name, hour, status, dbucket, erred, etype, count(*)
FROM stats_run_facts GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO stats_steps
SELECT namespace, workflow_name, hour, step, kind, etype, dbucket, count(*), sum(calls),
       sum(input_tokens), sum(output_tokens), total(cost), sum(unpriced)
FROM stats_step_facts GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- What the rollup holds of each run: its facts as counted, and its events counted
-- (seq < counted_len: the last seq + 1 when it was counted).
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

-- The runs written since they were counted.
CREATE TABLE stats_pending (run_id TEXT PRIMARY KEY) WITHOUT ROWID;

INSERT INTO stats_counted
SELECT f.run_id,
       coalesce((SELECT max(e.seq) + 1 FROM events e WHERE e.run_id = f.run_id), 0),
       f.namespace, f.workflow_name, f.hour, f.status, f.dbucket, f.erred, f.etype
FROM stats_run_facts f;

CREATE TRIGGER stats_run_inserted AFTER INSERT ON runs BEGIN
    INSERT INTO stats_pending VALUES (NEW.run_id) ON CONFLICT DO NOTHING;
END;

-- Appends change history_len: every write of a run that adds events or changes its facts.
CREATE TRIGGER stats_run_updated AFTER UPDATE OF history_len, status, closed_at, error ON runs
WHEN OLD.history_len IS NOT NEW.history_len OR OLD.status IS NOT NEW.status
     OR OLD.closed_at IS NOT NEW.closed_at OR OLD.error IS NOT NEW.error
BEGIN
    INSERT INTO stats_pending VALUES (NEW.run_id) ON CONFLICT DO NOTHING;
END;

-- Purges (not the hot path) take out at once what was counted: a run's events go first
-- (sqlite/_store.py purge_finished), while its row still keys them, then the run.
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

CREATE TRIGGER stats_run_deleted BEFORE DELETE ON runs BEGIN
    INSERT INTO stats_runs
    SELECT namespace, workflow_name, hour, status, dbucket, erred, etype, -1
    FROM stats_counted WHERE run_id = OLD.run_id
    ON CONFLICT DO UPDATE SET n = n + excluded.n;
    DELETE FROM stats_counted WHERE run_id = OLD.run_id;
    DELETE FROM stats_pending WHERE run_id = OLD.run_id;
END;
