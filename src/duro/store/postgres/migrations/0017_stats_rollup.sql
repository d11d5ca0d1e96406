-- The rollup behind duro stats (issue 18, docs/observability.md "How it scales"): the
-- same facts, keys and duration buckets as SQLite's migration 0016, counted per
-- namespace, workflow name and hour of the run's creation.
--
-- Concurrent writers: the triggers never update a shared counter (two transactions
-- adding to one row would wait on each other's row lock until commit, and could
-- deadlock): each appends its own delta rows (stats_*_delta: no key, no conflict). The
-- stats read sums the rollup and the deltas in one snapshot, so it is exact whatever is
-- folded; a writable store's read first folds the committed deltas into the rollup
-- (store/postgres/_store.py: one statement, one folder at a time by an advisory lock).
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
CREATE TABLE stats_runs_delta (LIKE stats_runs);

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
CREATE TABLE stats_steps_delta (LIKE stats_steps);

INSERT INTO stats_runs
SELECT namespace, workflow_name, status, dbucket, erred, etype, hour, count(*)
FROM stats_run_facts GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO stats_steps
SELECT namespace, workflow_name, step, kind, etype, dbucket, hour, count(*), sum(calls),
       sum(input_tokens), sum(output_tokens), sum(cost), sum(unpriced)
FROM stats_step_facts GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- A run's row as it was goes out (-1), as it is comes in (+1).
CREATE FUNCTION stats_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO stats_runs_delta
        SELECT f.namespace, f.workflow_name, f.status, f.dbucket, f.erred, f.etype, f.hour, -1
        FROM stats_run_fact(OLD) f;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO stats_runs_delta
        SELECT f.namespace, f.workflow_name, f.status, f.dbucket, f.erred, f.etype, f.hour, 1
        FROM stats_run_fact(NEW) f;
    END IF;
    RETURN NULL;
END $$;

-- Keyed by its run's row: purges delete a run's events in a statement before the run's
-- (store/postgres/_store.py purge_finished).
CREATE FUNCTION stats_step_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev events := CASE WHEN TG_OP = 'INSERT' THEN NEW ELSE OLD END;
    sign int := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO stats_steps_delta
    SELECT f.namespace, f.workflow_name, f.step, f.kind, f.etype, f.dbucket, f.hour, sign,
           sign * f.calls, sign * f.input_tokens, sign * f.output_tokens, sign * f.cost,
           sign * f.unpriced
    FROM runs r CROSS JOIN LATERAL stats_step_fact(ev, r) f WHERE r.run_id = ev.run_id;
    RETURN NULL;
END $$;

CREATE TRIGGER stats_run_inserted AFTER INSERT ON runs
FOR EACH ROW EXECUTE FUNCTION stats_run_changed();

-- Only when what the run adds changes (most updates are appends: history_len).
CREATE TRIGGER stats_run_updated AFTER UPDATE ON runs FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
      OR OLD.error IS DISTINCT FROM NEW.error)
EXECUTE FUNCTION stats_run_changed();

CREATE TRIGGER stats_run_deleted AFTER DELETE ON runs
FOR EACH ROW EXECUTE FUNCTION stats_run_changed();

CREATE TRIGGER stats_step_inserted AFTER INSERT ON events FOR EACH ROW
WHEN (NEW.kind IN ('step_completed', 'step_retrying', 'step_failed'))
EXECUTE FUNCTION stats_step_changed();

CREATE TRIGGER stats_step_deleted AFTER DELETE ON events FOR EACH ROW
WHEN (OLD.kind IN ('step_completed', 'step_retrying', 'step_failed'))
EXECUTE FUNCTION stats_step_changed();
