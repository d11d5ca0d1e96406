-- The rollup behind duro stats (issue 18, docs/observability.md "How it scales"): the
-- same facts, keys and duration buckets as SQLite's migration 0016, counted per
-- namespace, workflow name and hour of the run's creation, kept the same way: the
-- writer's triggers only mark a written run pending (stats_pending); the stats read of
-- a writable store brings pending runs in (postgres/_store.py stats), and every read adds
-- what is still pending, in one snapshot.
--
-- Concurrent writers: marking a run pending is an insert that does nothing when the row
-- is there; no writer updates a shared counter (two transactions adding to one row would
-- wait on each other's row lock until commit). A run's events commit in seq order (each
-- append is fenced on history_len under the run's row lock), so a run's last seq + 1
-- seen in one snapshot is a safe watermark (stats_counted.counted_len). One catch-up at
-- a time (an advisory lock), in one repeatable-read snapshot.
--
-- Durations are counted in log-scale buckets: bucket b holds [1.05^b, 1.05^(b+1)); the
-- read reports 1.05^(b+0.5), within 2.5% of the value measured. dbucket -1000000 = no
-- duration (a run not closed, an event without one), -999999 = zero or negative.

-- What one run adds to stats_runs (a function of the row: the triggers take OLD and
-- NEW, the view every row).
CREATE FUNCTION stats_run_fact(r runs)
RETURNS TABLE (run_id text, namespace text, workflow_name text, listed_at float8,
               hour bigint, status text, dbucket bigint, erred int, etype text)
LANGUAGE sql STABLE AS $$
SELECT r.run_id, r.namespace, r.workflow_name, r.created_at,
       floor(r.created_at / 3600)::bigint, r.status,
       CASE WHEN r.closed_at IS NULL THEN -1000000
            WHEN r.closed_at - r.created_at <= 0 THEN -999999
            ELSE floor(ln(r.closed_at - r.created_at) / ln(1.05::float8))::bigint END,
       (r.error IS NOT NULL AND r.status IN ('failed', 'timed_out', 'terminated',
                                             'cancelled'))::int,
       CASE WHEN r.error IS NOT NULL AND r.status IN ('failed', 'timed_out', 'terminated',
                                                       'cancelled')
            THEN coalesce(convert_from(r.error, 'UTF8')::jsonb ->> 'type', '')
            ELSE '' END
$$;

-- What one step event of a run adds to stats_steps.
CREATE FUNCTION stats_step_fact(e events, r runs)
RETURNS TABLE (run_id text, seq bigint, namespace text, workflow_name text,
               listed_at float8, hour bigint, step text, kind text, etype text,
               dbucket bigint, calls bigint, input_tokens bigint, output_tokens bigint,
               cost float8, unpriced bigint)
LANGUAGE sql STABLE AS $$
SELECT e.run_id, e.seq, r.namespace, r.workflow_name, r.created_at,
       floor(r.created_at / 3600)::bigint, coalesce(e.name, ''), e.kind,
       CASE WHEN e.kind <> 'step_completed'
            THEN coalesce(convert_from(e.data, 'UTF8')::jsonb ->> 'type', '')
            ELSE '' END,
       CASE WHEN jsonb_typeof(m.j -> 'duration') IS DISTINCT FROM 'number' THEN -1000000
            WHEN (m.j ->> 'duration')::float8 <= 0 THEN -999999
            ELSE floor(ln((m.j ->> 'duration')::float8) / ln(1.05::float8))::bigint END,
       u.calls, u.input_tokens::bigint, u.output_tokens::bigint, u.cost, u.unpriced
-- OFFSET 0: the meta parsed once, not once per use of j.
FROM (SELECT convert_from(e.meta, 'UTF8')::jsonb AS j OFFSET 0) m
CROSS JOIN LATERAL (
    SELECT count(*) AS calls,
           coalesce(sum(CASE WHEN jsonb_typeof(x -> 'input_tokens') = 'number'
                             THEN (x ->> 'input_tokens')::numeric END), 0) AS input_tokens,
           coalesce(sum(CASE WHEN jsonb_typeof(x -> 'output_tokens') = 'number'
                             THEN (x ->> 'output_tokens')::numeric END), 0) AS output_tokens,
           coalesce(sum(CASE WHEN jsonb_typeof(x -> 'cost') = 'number'
                             THEN (x ->> 'cost')::float8 END), 0.0) AS cost,
           count(*) FILTER (WHERE jsonb_typeof(x -> 'cost') IS DISTINCT FROM 'number')
               AS unpriced
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(m.j -> 'usage') = 'array'
                                   THEN m.j -> 'usage' ELSE '[]'::jsonb END) x
    WHERE jsonb_typeof(x) = 'object') u
$$;

CREATE VIEW stats_run_facts AS
SELECT f.* FROM runs r CROSS JOIN LATERAL stats_run_fact(r) f;

CREATE VIEW stats_step_facts AS
SELECT f.* FROM events e JOIN runs r ON r.run_id = e.run_id
CROSS JOIN LATERAL stats_step_fact(e, r) f
WHERE e.kind IN ('step_completed', 'step_retrying', 'step_failed');

CREATE TABLE stats_runs (
    namespace     text NOT NULL,
    workflow_name text NOT NULL,
    status        text NOT NULL,
    dbucket       bigint NOT NULL,
    erred         int NOT NULL,
    etype         text NOT NULL,
    hour          bigint NOT NULL,
    n             bigint NOT NULL,
    PRIMARY KEY (namespace, workflow_name, status, dbucket, erred, etype, hour)
);

CREATE TABLE stats_steps (
    namespace     text NOT NULL,
    workflow_name text NOT NULL,
    step          text NOT NULL,
    kind          text NOT NULL,
    etype         text NOT NULL,
    dbucket       bigint NOT NULL,
    hour          bigint NOT NULL,
    n             bigint NOT NULL,
    calls         bigint NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost          double precision NOT NULL,
    unpriced      bigint NOT NULL,
    PRIMARY KEY (namespace, workflow_name, step, kind, etype, dbucket, hour)
);

INSERT INTO stats_runs
SELECT namespace, workflow_name, status, dbucket, erred, etype, hour, count(*)
FROM stats_run_facts GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO stats_steps
SELECT namespace, workflow_name, step, kind, etype, dbucket, hour, count(*), sum(calls),
       sum(input_tokens), sum(output_tokens), sum(cost), sum(unpriced)
FROM stats_step_facts GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- What the rollup holds of each run: its facts as counted, and its events counted
-- (seq < counted_len).
CREATE TABLE stats_counted (
    run_id        text PRIMARY KEY,
    counted_len   bigint NOT NULL,
    namespace     text NOT NULL,
    workflow_name text NOT NULL,
    status        text NOT NULL,
    dbucket       bigint NOT NULL,
    erred         int NOT NULL,
    etype         text NOT NULL,
    hour          bigint NOT NULL
);

-- The runs written since they were counted.
CREATE TABLE stats_pending (run_id text PRIMARY KEY);

INSERT INTO stats_counted
SELECT f.run_id,
       coalesce((SELECT max(e.seq) + 1 FROM events e WHERE e.run_id = f.run_id), 0),
       f.namespace, f.workflow_name, f.status, f.dbucket, f.erred, f.etype, f.hour
FROM stats_run_facts f;

CREATE FUNCTION stats_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stats_pending VALUES (NEW.run_id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER stats_run_inserted AFTER INSERT ON runs
FOR EACH ROW EXECUTE FUNCTION stats_mark_pending();

-- Appends change history_len: every write of a run that adds events or changes its facts.
CREATE TRIGGER stats_run_updated AFTER UPDATE ON runs FOR EACH ROW
WHEN (OLD.history_len IS DISTINCT FROM NEW.history_len
      OR OLD.status IS DISTINCT FROM NEW.status
      OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
      OR OLD.error IS DISTINCT FROM NEW.error)
EXECUTE FUNCTION stats_mark_pending();

-- Purges (not the hot path) take out at once what was counted: a batch's events go in
-- a statement before its runs (postgres/_store.py purge_finished), while their rows
-- still key them, then the runs.
CREATE FUNCTION stats_step_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stats_steps AS t
    SELECT f.namespace, f.workflow_name, f.step, f.kind, f.etype, f.dbucket, f.hour, -1,
           -f.calls, -f.input_tokens, -f.output_tokens, -f.cost, -f.unpriced
    FROM runs r
    JOIN stats_counted c ON c.run_id = r.run_id AND OLD.seq < c.counted_len
    CROSS JOIN LATERAL stats_step_fact(OLD, r) f
    WHERE r.run_id = OLD.run_id
    ON CONFLICT (namespace, workflow_name, step, kind, etype, dbucket, hour)
    DO UPDATE SET n = t.n + excluded.n, calls = t.calls + excluded.calls,
        input_tokens = t.input_tokens + excluded.input_tokens,
        output_tokens = t.output_tokens + excluded.output_tokens,
        cost = t.cost + excluded.cost, unpriced = t.unpriced + excluded.unpriced;
    RETURN NULL;
END $$;

CREATE TRIGGER stats_step_deleted AFTER DELETE ON events FOR EACH ROW
WHEN (OLD.kind IN ('step_completed', 'step_retrying', 'step_failed'))
EXECUTE FUNCTION stats_step_deleted();

CREATE FUNCTION stats_run_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stats_runs AS t
    SELECT namespace, workflow_name, status, dbucket, erred, etype, hour, -1
    FROM stats_counted WHERE run_id = OLD.run_id
    ON CONFLICT (namespace, workflow_name, status, dbucket, erred, etype, hour)
    DO UPDATE SET n = t.n + excluded.n;
    DELETE FROM stats_counted WHERE run_id = OLD.run_id;
    DELETE FROM stats_pending WHERE run_id = OLD.run_id;
    RETURN NULL;
END $$;

CREATE TRIGGER stats_run_deleted AFTER DELETE ON runs
FOR EACH ROW EXECUTE FUNCTION stats_run_deleted();
